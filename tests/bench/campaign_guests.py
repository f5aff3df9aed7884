"""The long hostile-guest campaign (not part of the default test run): seeded streams of port accesses, malformed
fw_cfg DMA and resets mid-DMA on several vCPUs, until --ops guest operations have been fired. Each round is one
launch (vmm.launch, relaunch on reset, as the CLI does): a few machines reset in the middle of the stream, the last
runs to its end and checks fw_cfg still serves a good descriptor. Optionally first sweeps every port 0..0xffff at
every width, in, out and rep ins.

Every round must end with the guest's healthy status (0x21); anything else is printed with its seed and counted.
Usage: python tests/bench/campaign_guests.py [--ops 1000000] [--per-round 20000] [--cpus 3] [--sweep] [--seed 1]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.hostile import HEALTHY, MODE_SWEEP, hostile_image, run_hostile  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=1_000_000, help="guest operations to fire in all (default 10^6)")
    ap.add_argument("--per-round", type=int, default=20_000, help="operations per vCPU per round")
    ap.add_argument("--cpus", type=int, default=3)
    ap.add_argument("--resets", type=int, default=3, help="machines reset mid-DMA per round before the last")
    ap.add_argument("--sweep", action="store_true", help="first sweep every port, width and direction (one round)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--memory", type=int, default=64, help="guest RAM in MiB")
    a = ap.parse_args()
    image = hostile_image()
    fired = rounds = bad = machines = 0
    totals: dict[str, int] = {}
    started = time.monotonic()
    seed = a.seed
    if a.sweep:
        r = run_hostile(seed=seed, ops=1, cpus=1, mode=MODE_SWEEP, timeout=3600, image=image)
        print(f"sweep: status {r.status} in {r.seconds:.0f} s (65,536 ports x 3 widths x in/out/rep ins)", flush=True)
        bad += r.status != HEALTHY
    while fired < a.ops:
        r = run_hostile(seed=seed, ops=a.per_round, cpus=a.cpus, resets=a.resets, memory=a.memory << 20,
                        timeout=1800, image=image)
        rounds += 1
        machines += r.runs
        # the reset machines' operations are not reported by the guest; count only the final run's, which it prints
        done = r.counts.get("ops", 0)
        fired += done
        for k, v in r.counts.items():
            totals[k] = totals.get(k, 0) + v
        if r.status != HEALTHY or r.runs != a.resets + 1:
            bad += 1
            print(f"seed {seed}: status {r.status} after {r.runs} machines: {r.result.message[:300]}", flush=True)
        seed += 1
        el = time.monotonic() - started
        print(f"round {rounds}: {fired:,} ops in {el:.0f} s ({fired / el:,.0f} ops/s), {machines} machines, "
              f"{bad} bad", flush=True)
    el = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total: {fired:,} counted ops ({totals}) in {rounds} rounds, {machines} machines "
          f"({machines - rounds} reset mid-DMA), {el:.0f} s, {bad} bad rounds, peak RSS {peak:.0f} MiB")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

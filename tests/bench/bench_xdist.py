"""A pytest suite of 200 guest launches through the plugin's `pyvmm_run`, at pytest-xdist -n 1 and -n 2 (and more).

Usage: python tests/bench/bench_xdist.py [--launches 200] [--runs 3] [--workers 1 2] [--bare]
Each launch is a tiny guest (vmm.testing.tiny_guest: print a line, exit through port 0xf4) in a 64 MiB VM, one
test each. For each worker count it times, in a subprocess, the whole suite (pytest start to end: worker start-up
included) and the same suite with 2 launches (start-up, collection, one launch per worker); their difference is
the launch phase (launches - 2 launches). Worker counts alternate run by run, so a change in the host's load hits
each alike; medians (min-max) and the speed-up over the first count are printed with the load average. --bare
loads only xdist and pyvmm's plugin (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1), leaving out whatever other pytest plugins
are installed (hypothesis, ...), whose import each worker pays at start-up. Needs pytest-xdist and /dev/kvm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SUITE = """
import pytest
from vmm.testing import tiny_guest

GUEST = tiny_guest("launch\\n", 0x10)

@pytest.mark.parametrize("i", range({launches}))
def test_launch(pyvmm_run, i):
    out = pyvmm_run(GUEST, memory="64M", timeout=60)
    assert (out.status, out.text) == (0x21, "launch\\n")
"""


def _autoloads_pyvmm() -> bool:
    p = subprocess.run([sys.executable, "-c", "from importlib.metadata import entry_points as e;"
                        "print([x.value for x in e(group='pytest11')])"], capture_output=True, text=True)
    return "vmm.pytest_plugin" in p.stdout


def run_suite(folder: Path, name: str, workers: int, launches: int, bare: bool) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    plugins = []
    if bare:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        plugins = ["-p", "xdist.plugin", "-p", "vmm.pytest_plugin"]
    elif not _autoloads_pyvmm():
        plugins = ["-p", "vmm.pytest_plugin"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins, "-n", str(workers), name]
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if p.returncode != 0 or f"{launches} passed" not in p.stdout:
        sys.exit(f"the suite failed at -n {workers}:\n{p.stdout[-3000:]}{p.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launches", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--bare", action="store_true", help="only xdist and pyvmm's plugin (no other pytest plugins)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyvmm-xdist-bench-") as tmp:
        folder = Path(tmp)
        (folder / "test_launches.py").write_text(SUITE.format(launches=args.launches))
        (folder / "test_two.py").write_text(SUITE.format(launches=2))
        print(f"{os.cpu_count()} CPUs; {args.launches} launches; {'bare' if args.bare else 'all installed plugins'}; "
              f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        suite: dict[int, list[float]] = {n: [] for n in args.workers}
        phase: dict[int, list[float]] = {n: [] for n in args.workers}
        for r in range(args.runs):
            for n in (args.workers if r % 2 == 0 else args.workers[::-1]):
                t = run_suite(folder, "test_launches.py", n, args.launches, args.bare)
                t2 = run_suite(folder, "test_two.py", n, 2, args.bare)
                suite[n].append(t)
                phase[n].append(max(t - t2, 1e-3))
                print(f"run {r + 1}: -n {n}: suite {t:.2f} s, 2-launch suite {t2:.2f} s, launch phase {t - t2:.2f} s;"
                      f" load {os.getloadavg()[0]:.2f}", flush=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        first = args.workers[0]
        for n in args.workers:
            s, p = statistics.median(suite[n]), statistics.median(phase[n])
            print(f"-n {n}: suite median {s:.2f} s ({min(suite[n]):.2f}-{max(suite[n]):.2f}), "
                  f"{statistics.median(suite[first]) / s:.2f}x of -n {first}; launch phase median {p:.2f} s "
                  f"({(args.launches - 2) / p:.0f} launches/s), {statistics.median(phase[first]) / p:.2f}x")


if __name__ == "__main__":
    main()

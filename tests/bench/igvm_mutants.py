"""Mutation campaign over the IGVM launch path: mutate sample files, push each through read, dump, plan, fill
and check, and count what ends badly.

Usage: python tests/bench/igvm_mutants.py [--count 20000] [--start 0] [--seed 1] [--save DIR] [--memory-limit MiB]
       [--launch-every K] [--no-trace] [--seconds S]

Every mutant must either plan or raise LoadError (IgvmError is one); anything else is a crash. A mutant that
takes over --slow seconds is slow; one whose traced allocations exceed the file's size plus --max-alloc MiB
is greedy. The process runs under RLIMIT_AS (--memory-limit), so an allocation the checks missed shows up as a
MemoryError crash instead of swapping the host. Mutations: bytes set or flipped, the file cut or grown, and,
most of them, one field of one header set to an edge value (0, all ones, 2^64-4096, 2^42, 0x7FFFF000, the
file's size, ...) with the checksum fixed so the value reaches the rules past the CRC.
Each mutant is planned for a random typed form (none, linux, uefi) and platform choice (the file's default,
native, vsm_isolation, sev_snp, tdx), and the filled plan is checked against where the launch would let it write
(RAM, the firmware window, a TDX image's RAM below 4 GiB). With --launch-every K, one accepted 64 MiB mutant in K
is also launched in a real VM (tests/bench/mutant_launch.py): it must end with a documented status.
Mutant N is a pure function of (--seed, N): it draws from its own random.Random((seed << 32) | N), so
`--start S --count C` runs exactly mutants S..S+C-1 of that seed (with the same launch choices) whatever ran
before; a campaign can be resumed after mutant N, or split over processes by index range, and the counts added.
--no-trace skips tracemalloc (about twice as fast; the greedy check and the traced peak are then not measured, max
RSS still is).
Prints counts and the first few crashes; --save writes every crashing, slow or greedy mutant to DIR.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import tracemalloc
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from loaders.errors import LoadError  # noqa: E402
from loaders.igvm import read_igvm  # noqa: E402
from loaders.igvm.describe import describe  # noqa: E402
from loaders.igvm.structs import BODY_LAYOUTS, FIXED_HEADER_V1  # noqa: E402
from tests.igvm_samples import header_bodies, patch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutant_launch import LAUNCH_TIMEOUT  # noqa: E402

EDGE_VALUES = (0, 1, 0xFFF, 0x1000, 0x2000, 0x200000, 0x7FFFF000, 0x80000000, 0xFFFFF000, 0xFFFFFFFF,
               1 << 32, 1 << 42, 1 << 52, 1 << 63, (1 << 64) - 0x1000, (1 << 64) - 1)


def seeds() -> dict[str, bytes]:
    """The golden files, igvmgen's SEV-SNP file, and packed NATIVE and VSM images that use every parameter usage
    pyvmm fills."""
    from loaders.igvm.constants import HeaderType, Platform
    from loaders.igvm.pack import ParamSpec, pack_flat_image
    import gzip
    data = ROOT / "tests" / "data" / "igvm"
    out = {p.name: p.read_bytes() for p in sorted(data.glob("*.igvm"))}
    out["igvmgen-snp.igvm"] = gzip.decompress((data / "igvmgen-snp.igvm.gz").read_bytes())   # another tool's file
    usages = (HeaderType.VP_COUNT_PARAMETER, HeaderType.MEMORY_MAP, HeaderType.COMMAND_LINE, HeaderType.MADT,
              HeaderType.SRAT, HeaderType.MMIO_RANGES, HeaderType.ENVIRONMENT_INFO_PARAMETER)
    params = tuple(ParamSpec(u, 0x200000 + 0x1000 * i) for i, u in enumerate(usages))
    for platform in (Platform.NATIVE, Platform.VSM_ISOLATION):
        out[f"packed-{platform.name.lower()}"] = pack_flat_image(b"\xf4" * 64, params=params, platform=platform,
                                                                 required_memory=((0, 0x400000),))
    return out


def edit_field(rng: random.Random, b: bytearray, hs: list[tuple[int, int]]) -> None:
    """One field of one header set to an edge value (or a near one), in its own width (at most 8 bytes)."""
    body, typ = rng.choice(hs)
    layout = BODY_LAYOUTS[typ]
    off, width = layout.span(rng.choice(layout.fields))
    width = min(width, 8)
    value = rng.choice(EDGE_VALUES + (len(b), len(b) - 0x1000, rng.getrandbits(64)))
    if rng.random() < 0.3:
        value += rng.choice((-0x1000, -1, 1, 0x1000))
    value &= (1 << (8 * width)) - 1
    b[body + off:body + off + width] = value.to_bytes(width, "little")


def mutate(rng: random.Random, seed: bytes, hs: list[tuple[int, int]]) -> bytes:
    b = bytearray(seed)
    fix = rng.random() < 0.9
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not b:       # cut to nothing by an earlier step: the empty file is the mutant
            break
        op = rng.random()
        if op < 0.6 and hs:
            edit_field(rng, b, hs)
        elif op < 0.75:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.85:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.95:
            end = FIXED_HEADER_V1.read(seed, 0)
            limit = end.variable_header_offset + end.variable_header_size
            i = rng.randrange(24, limit) & ~3
            v = rng.choice(EDGE_VALUES)
            b[i:i + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")
        else:
            del b[rng.randrange(len(b)):]
            fix = False
    if fix and len(b) >= 32:
        try:
            return patch(bytes(b), 0, b"")
        except Exception:  # noqa: BLE001 - a mutant whose header offsets no longer fit: leave the CRC
            pass
    return bytes(b)


def run_one(raw: bytes, memory: int, cpus: int, typ: str | None, platform: str | None = None,
            launched: Counter | None = None, messages: dict[str, str] | None = None) -> str:
    """'planned' or 'refused'; anything else propagates (a crash). With `launched`, the plan also runs in a VM."""
    from vmm.igvm_source import IgvmSpec, prepare_igvm
    from vmm.plan_text import plan_lines
    try:
        describe(read_igvm(raw), raw)
    except LoadError:
        pass
    try:
        prepared = prepare_igvm(IgvmSpec("mutant.igvm", typ), memory, cpus, platform=platform, raw=raw)
    except LoadError:
        return "refused"
    plan_lines(prepared)
    prepared.plan.check(prepared.targets())
    if launched is not None:
        from mutant_launch import launch_mutant
        launch_mutant(prepared.plan, memory, cpus, launched, prepared.firmware_window, messages)
    return "planned"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--start", type=int, default=0, help="index of the first mutant (default 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--slow", type=float, default=1.0, help="seconds that make a mutant slow (default 1)")
    ap.add_argument("--max-alloc", type=int, default=64, help="MiB beyond the file's size (default 64)")
    ap.add_argument("--memory-limit", type=int, default=2048, help="RLIMIT_AS in MiB (default 2048)")
    ap.add_argument("--save", metavar="DIR", help="write crashing, slow and greedy mutants here")
    ap.add_argument("--launch-every", type=int, default=0, metavar="K",
                    help="launch one accepted 64 MiB mutant in K in a real VM (default 0: none)")
    ap.add_argument("--no-trace", action="store_true", help="skip tracemalloc (faster; no greedy check)")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long, reporting what ran (default: no limit)")
    args = ap.parse_args(argv)
    limit = args.memory_limit << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if not 0 <= args.start and args.start + args.count <= 1 << 32:
        ap.error("mutant indices must lie in 0..2^32-1")
    pool = seeds()
    names = sorted(pool)
    parsed = {name: header_bodies(raw) for name, raw in pool.items()}
    outcomes: Counter = Counter()
    crashes: Counter = Counter()
    examples: dict[str, str] = {}
    slowest = (0.0, "")
    peak_max = 0
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    launches: Counter = Counter()
    launch_notes: dict[str, str] = {}      # the first message of each launch status but timeout and reset
    trace = not args.no_trace
    if trace:
        tracemalloc.start()
    t_start = time.monotonic()
    done = 0
    for n in range(args.start, args.start + args.count):
        if args.seconds and time.monotonic() - t_start > args.seconds:
            break
        if done and done % 10000 == 0:
            print(f"  {done} mutants (next {n}), {time.monotonic() - t_start:.0f} s: " +
                  ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())), flush=True)
        done += 1
        rng = random.Random((args.seed << 32) | n)
        name = rng.choice(names)
        raw = mutate(rng, pool[name], parsed[name])
        memory = rng.choice((64 << 20, 1 << 30, 5 << 30))
        typ = rng.choice((None, None, None, "linux", "uefi"))
        platform = rng.choice((None, None, "native", "vsm_isolation", "sev_snp", "tdx"))
        cpus = rng.choice((1, 4))
        pick = rng.random()      # drawn for every mutant, so --launch-every changes no mutant, only which launch
        launch = args.launch_every and memory == 64 << 20 and pick * args.launch_every < 1
        if trace:
            tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0] if trace else 0
        t0 = time.perf_counter()
        kind = ""
        try:
            known = len(launch_notes)
            outcomes[run_one(raw, memory, cpus, typ, platform, launches if launch else None, launch_notes)] += 1
            if len(launch_notes) > known:
                key = next(reversed(launch_notes))
                launch_notes[key] = f"mutant {n} of {name}: {launch_notes[key]}"
        except Exception as e:  # noqa: BLE001 - the point: anything but LoadError is a finding
            tb = traceback.extract_tb(e.__traceback__)[-1]
            key = f"{type(e).__name__} at {Path(tb.filename).name}:{tb.lineno}"
            crashes[key] += 1
            examples.setdefault(key, f"mutant {n} of {name} (-m {memory >> 20}M, type={typ}): {e}"[:300])
            outcomes["crash"] += 1
            kind = "crash"
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - base if trace else 0
        peak_max = max(peak_max, peak)
        if dt > slowest[0]:
            slowest = (dt, f"mutant {n} of {name}")
        if dt > args.slow + (2 * LAUNCH_TIMEOUT if launch else 0):
            outcomes["slow"] += 1
            kind = kind or "slow"
        if peak > len(raw) + (args.max_alloc << 20):
            outcomes["greedy"] += 1
            kind = kind or "greedy"
        if kind and save:
            (save / f"{kind}-{n}-{name}").write_bytes(raw)
    if trace:
        tracemalloc.stop()
    took = time.monotonic() - t_start
    print(f"{done} mutants (seed {args.seed}, {args.start}..{args.start + done - 1}) in {took:.1f} s: " +
          ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print(f"slowest {slowest[0] * 1000:.1f} ms ({slowest[1]}); largest traced peak {peak_max / 2**20:.1f} MiB; "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if launches:
        print(f"launched {sum(launches.values())} accepted mutants in VMs: " +
              ", ".join(f"{k} {v}" for k, v in sorted(launches.items())))
        for key, text in launch_notes.items():
            print(f"  first {key}: {text}")
    for key, count in crashes.most_common():
        print(f"  {count:6d}  {key}\n          e.g. {examples[key]}")
    return 1 if crashes or outcomes["slow"] or outcomes["greedy"] else 0


if __name__ == "__main__":
    sys.exit(main())

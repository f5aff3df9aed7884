"""IGVM launch costs: loading 64 MiB of page data into a 1 GiB guest, and process start to the first UART byte.

Usage: python tests/bench/bench_igvm_load.py [--runs 5]
Load: read (map) + validate + plan + fill + check (prepare), then apply into a fresh machine's RAM (load), beside a
memcpy floor (one 64 MiB slice copy into an anonymous mapping). Peak memory is the process's max RSS growth.
Start-up: `python -m vmm --igvm hello.igvm` from spawn to the first byte on stdout, and to exit (side by side
with QEMU: tests/bench/bench_vs_qemu.py).
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
sys.path.insert(0, str(ROOT))

from kvm.mman import HostMapping  # noqa: E402
from loaders.igvm import IgvmBuilder, Platform, VpContext  # noqa: E402
from loaders.igvm.pack import native_context_for  # noqa: E402
from vmm.igvm_source import IgvmSpec, prepare_igvm  # noqa: E402
from vmm.machine import Machine, MachineConfig  # noqa: E402

MiB = 1 << 20


def big_igvm(path: Path) -> None:
    b = IgvmBuilder()
    mask = b.platform(Platform.NATIVE)
    b.pages(0x1000000, os.urandom(64 * MiB), mask)
    b.add(VpContext(0, mask, 0, native_context_for(0x1000000)))
    path.write_bytes(b.build())


def fmt(xs: list[float], unit: float = 1e3, suffix: str = "ms") -> str:
    return f"{statistics.median(xs) * unit:.1f} {suffix} ({min(xs) * unit:.1f}-{max(xs) * unit:.1f})"


def bench_load(path: Path, runs: int) -> None:
    prep, apply, floor = [], [], []
    src = os.urandom(64 * MiB)
    for _ in range(runs):
        t0 = time.perf_counter()
        p = prepare_igvm(IgvmSpec(str(path)), 1 << 30, 1)
        t1 = time.perf_counter()
        with Machine(MachineConfig(memory=1 << 30)) as m:
            t2 = time.perf_counter()
            m.load(p.plan)
            t3 = time.perf_counter()
        prep.append(t1 - t0)
        apply.append(t3 - t2)
        hm = HostMapping(64 * MiB)
        t4 = time.perf_counter()
        hm.view[:] = src
        floor.append(time.perf_counter() - t4)
        hm.close()
        del p
    total = [a + b for a, b in zip(prep, apply)]
    print(f"64 MiB IGVM into 1 GiB: prepare {fmt(prep)}, apply {fmt(apply)}, total {fmt(total)} = "
          f"{64 * MiB / statistics.median(total) / 1e9:.2f} GB/s; apply alone "
          f"{64 * MiB / statistics.median(apply) / 1e9:.2f} GB/s; memcpy floor {fmt(floor)} = "
          f"{64 * MiB / statistics.median(floor) / 1e9:.2f} GB/s")
    child = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
             "def rss(): return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
             "from vmm.igvm_source import IgvmSpec, prepare_igvm\nfrom vmm.machine import Machine, MachineConfig\n"
             "m = Machine(MachineConfig(memory=1 << 30)); r0 = rss()\n"
             f"p = prepare_igvm(IgvmSpec({str(path)!r}), 1 << 30, 1); m.load(p.plan)\n"
             "print(rss() - r0)")
    peaks = [int(subprocess.check_output([sys.executable, "-c", child])) / 1024 for _ in range(3)]
    print(f"peak RSS growth for prepare + load: {fmt(peaks, 1, 'MiB')}: 64 MiB of guest RAM written, so "
          f"{fmt([p - 64 for p in peaks], 1, 'MiB')} beyond it (the file is mapped, its pages dropped as they "
          f"are copied)")


def bench_startup(path: Path, runs: int) -> None:
    first, done = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "vmm", "--igvm", str(path), "-m", "64M"], stdout=subprocess.PIPE,
                             cwd=ROOT)
        p.stdout.read(1)
        first.append(time.perf_counter() - t0)
        p.stdout.read()
        p.wait()
        done.append(time.perf_counter() - t0)
    print(f"start-up, small IGVM: first UART byte {fmt(first)}, process exit {fmt(done)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    from tests.igvm_guests import flat_igvm
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.igvm"
        big_igvm(big)
        hello = Path(tmp) / "hello.igvm"
        hello.write_bytes(flat_igvm("hello.S"))
        bench_load(big, a.runs)
        bench_startup(hello, a.runs * 2)


if __name__ == "__main__":
    main()

"""type=uefi costs: config blob construction (ACPI tables included) for 1 and 64 vCPUs, and process start to the
first UART byte of the bundled UEFI example. Usage: python tests/bench/bench_uefi.py [--runs 7]"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from loaders.uefi.blob import build_config_blob  # noqa: E402
from vmm.host import host_info  # noqa: E402
from loaders.uefi.typed import uefi_machine  # noqa: E402
from vmm.igvm_source import UEFI_BLOB_MMIO  # noqa: E402


def fmt(xs: list[float], unit: float, suffix: str) -> str:
    return f"{statistics.median(xs) * unit:.3f} {suffix} ({min(xs) * unit:.3f}-{max(xs) * unit:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    for cpus in (1, 64):
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            host = host_info(2 << 30, cpus)             # MADT, SRAT, SLIT, PPTT for this machine
            blob = build_config_blob(uefi_machine(host, UEFI_BLOB_MMIO, False))
            times.append(time.perf_counter() - t)
        print(f"config blob, {cpus} vCPUs: {len(blob)} bytes, built (tables included) in {fmt(times, 1e3, 'ms')}")
    first, done = [], []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "vmm", "--igvm", "type=uefi,path=examples/hello-uefi.igvm", "-m",
                              "256M", "--no-reboot"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        p.stdout.read(1)
        first.append(time.perf_counter() - t0)
        p.stdout.read()
        p.wait()
        done.append(time.perf_counter() - t0)
    print(f"type=uefi start-up (examples/hello-uefi.igvm): first UART byte {fmt(first, 1e3, 'ms')}, "
          f"exit {fmt(done, 1e3, 'ms')}")


if __name__ == "__main__":
    main()

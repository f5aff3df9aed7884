"""fw_cfg transfer speed: a guest reading a 16 MiB item by DMA (one descriptor) and by rep insb (one exit per
4 KiB page; time per read = a run of many reads less a run of one), and the device alone against a
bytearray. Usage: python tests/bench/bench_fw_cfg.py [--runs 5]"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from chipset.fw_cfg import DMA_ACCESS, DmaControl, FwCfg, FwCfgFile, Offset, directory  # noqa: E402
from chipset.ram import FlatRam  # noqa: E402
from tests.guests.run import fnv1a as fnv, run_flat_guest  # noqa: E402
from vmm.fw_cfg import fw_cfg_items  # noqa: E402

SIZE = 16 << 20
MEMORY = 64 << 20


def fmt(xs: list[float], unit: float, suffix: str) -> str:
    return f"{statistics.median(xs) * unit:.1f} {suffix} ({min(xs) * unit:.1f}-{max(xs) * unit:.1f})"


def guest(mode: int, reps: int, items, sel: int) -> float:
    t = time.perf_counter()
    r = run_flat_guest("start64.S", extra_sources=("fwcfg_bench.c",), memory=MEMORY, fw_cfg=items, timeout=300,
                       defines={"MODE": mode, "REPS": reps, "SEL": sel, "SIZE": SIZE})
    assert r.status == 0x21, r.text
    data = bytes(items.file("opt/big").data)
    assert r.text.strip() == f"fnv={fnv(data[:4096]):#x} {fnv(data[-4096:]):#x}", r.text
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    data = random.Random(1).randbytes(SIZE)
    items = fw_cfg_items(MEMORY, 1, (FwCfgFile("opt/big", data),))
    sel = next(s for s, f in directory(items.files)[1] if f.name == "opt/big")
    for name, mode, reps in (("DMA", 0, 65), ("rep insb", 1, 9)):
        one, many = [], []
        for _ in range(a.runs):
            one.append(guest(mode, 1, items, sel))
            many.append(guest(mode, reps, items, sel))
        per = [(m - o) / (reps - 1) for m, o in zip(many, one)]
        print(f"guest {name}, 16 MiB: {fmt(per, 1e3, 'ms')} per read = "
              f"{SIZE / statistics.median(per) / 1e6:.0f} MB/s (run of 1 read: {fmt(one, 1e3, 'ms')})")
    ram = FlatRam([(0, MEMORY)])
    dev = FwCfg(ram, items)
    low = int.from_bytes((0x1000).to_bytes(4, "big"), "little")
    times = []
    for _ in range(a.runs):
        ram.write(0x1000, DMA_ACCESS.pack(DmaControl.SELECT | DmaControl.READ | sel << 16, SIZE, 0x100000))
        t = time.perf_counter()
        dev.io_write(Offset.DMA_LOW, 4, low)
        times.append(time.perf_counter() - t)
    print(f"device alone, DMA 16 MiB into a bytearray: {fmt(times, 1e3, 'ms')}")
    times = []
    for _ in range(a.runs):
        dev.io_write(Offset.SELECTOR, 2, sel)
        t = time.perf_counter()
        for _ in range(SIZE // 4096):
            dev.io_read_string(Offset.DATA, 1, 4096)
        times.append((time.perf_counter() - t) / (SIZE // 4096))
    print(f"device alone, one rep insb exit (4096 bytes): {fmt(times, 1e6, 'us')}")


if __name__ == "__main__":
    main()

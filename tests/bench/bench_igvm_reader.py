"""IGVM reader throughput: a 64 MiB file of 16,384 distinct pages, and a file of 100,000 small headers.

Usage: python tests/bench/bench_igvm_reader.py [--runs 5]
Prints medians (min-max) of MB/s and headers/s, and the reader's peak traced memory beyond the file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loaders.igvm import IgvmFile, PageData, Platform, RequiredMemory, SupportedPlatform, read_igvm, write_igvm  # noqa


def big_file() -> bytes:
    pages = tuple(PageData(i * 4096, 1, data=os.urandom(4096)) for i in range(16384))
    return write_igvm(IgvmFile(2, (SupportedPlatform(1, 0, Platform.NATIVE),), directives=pages))


def many_headers() -> bytes:
    hs = tuple(RequiredMemory(i * 4096, 1, 4096) if i % 2 else PageData(i * 4096, 1) for i in range(100_000))
    return write_igvm(IgvmFile(2, (SupportedPlatform(1, 0, Platform.NATIVE),), directives=hs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    for label, raw in (("64 MiB, 16,384 page-data headers", big_file()), ("100,000 small headers", many_headers())):
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            f = read_igvm(raw)
            times.append(time.perf_counter() - t)
        n = 1 + len(f.directives)
        tracemalloc.start()
        read_igvm(raw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        med = statistics.median(times)
        print(f"{label}: file {len(raw) / 2**20:.1f} MiB, {n} headers; parse {med * 1000:.1f} ms "
              f"({min(times) * 1000:.1f}-{max(times) * 1000:.1f}); {len(raw) / med / 1e6:,.0f} MB/s; "
              f"{n / med:,.0f} headers/s; reader peak memory {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

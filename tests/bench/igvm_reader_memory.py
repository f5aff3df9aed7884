"""The strict IGVM reader's memory on a file of many headers: tracemalloc peak and the process's peak RSS.

    python tests/bench/igvm_reader_memory.py [--headers 100000]

Builds a NATIVE file of N PAGE_DATA headers (16 distinct data pages shared among them, one page in four a
page of zeroes) with pyvmm's builder, then reads it in a fresh subprocess and prints the file size, the
reader's tracemalloc peak (the file's bytes included), the read time (untraced, then traced), ru_maxrss before and after, and the time
to plan the file's load (loaders/igvm/load.py)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


_CHILD = r"""
import resource, sys, time, tracemalloc
sys.path.insert(0, sys.argv[2])
from loaders.igvm.reader import read_igvm
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as fh:
    t = time.perf_counter()
    read_igvm(fh.read())
    plain = time.perf_counter() - t
tracemalloc.start()
with open(sys.argv[1], "rb") as fh:
    data = fh.read()
t = time.perf_counter()
f = read_igvm(data)
took = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from loaders.igvm.load import choose_platform, igvm_plan
t = time.perf_counter()
plan = igvm_plan(f, choose_platform(f))
planned = time.perf_counter() - t
print(f"{len(data)} {len(f.directives)} {peak} {took:.3f} {rss0} {rss1} {plain:.3f} {planned:.3f}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--headers", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "many.igvm")
        # Built in a process of its own: Linux keeps ru_maxrss across fork and exec, so a reader forked from a
        # process that built the file in its own memory would report the builder's peak.
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from tests."
                        "test_igvm_reader_memory import many_headers; open(sys.argv[2], 'wb').write(many_headers("
                        "int(sys.argv[3])))", ROOT, path, str(args.headers)], check=True)
        out = subprocess.run([sys.executable, "-c", _CHILD, path, ROOT], capture_output=True, text=True,
                             check=True).stdout.split()
    size, n, peak, took, rss0, rss1, plain, planned = (int(out[0]), int(out[1]), int(out[2]), out[3],
                                                       int(out[4]), int(out[5]), out[6], out[7])
    mib = 1 << 20
    print(f"file {size / mib:.2f} MiB, {n} directives; tracemalloc peak {peak / mib:.2f} MiB "
          f"(file + {(peak - size) / mib:.2f} MiB); read {plain} s ({took} s traced); ru_maxrss {rss0 / 1024:.1f} -> "
          f"{rss1 / 1024:.1f} MiB; planned (loaders/igvm/load.py) in {planned} s")


if __name__ == "__main__":
    main()

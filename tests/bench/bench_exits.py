"""Exit cost of pyvmm's run loop beside the floor (a bare ctypes loop that only calls KVM_RUN), same run.

Usage: python tests/bench/bench_exits.py [--count 100000] [--runs 5]
Guests: 100,000 OUTs to COM1 (coalesced), to port 0x80 (the POST-code device, one exit each) and to port 0x3000
(unclaimed, one exit each). Prints medians (and min-max) of wall and user CPU per exit, exits per byte for the UART,
and pyvmm's user CPU per exit over the floor's, both medians of the same alternating rounds.
User and system CPU come from getrusage, which this kernel may split by sampling at its tick: take enough runs.
"""

from __future__ import annotations

import argparse
import ctypes
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kvm.ioctl import run_ioctl  # noqa: E402
from kvm.uapi import ExitReason, Ioctl, field_offset, kvm_run  # noqa: E402
from loaders.flat import flat_plan  # noqa: E402
from tests.guests.build import build  # noqa: E402
from vmm.machine import Machine, MachineConfig  # noqa: E402


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def run_pyvmm(image: bytes) -> tuple[float, float, float, int, int]:
    """(wall, user, sys, exits, serial bytes) of pyvmm running the image to its debug exit."""
    out = bytearray()
    with Machine(MachineConfig(memory=64 << 20, serial_out=out.extend)) as m:
        m.load(flat_plan(image))
        u0, s0 = _cpu()
        t0 = time.perf_counter()
        r = m.run(60)
        t1 = time.perf_counter()
        u1, s1 = _cpu()
        assert r.status == 1, r
        return t1 - t0, u1 - u0, s1 - s0, sum(m.exit_counts), len(out)


def run_floor(image: bytes) -> tuple[float, float, float, int, int]:
    """The same guest under a loop that calls KVM_RUN, discards the serial ring and reads the exit reason and port."""
    with Machine(MachineConfig(memory=64 << 20)) as m:
        m.load(flat_plan(image))
        v = m.vm.vcpus[0]
        fd = v.fd
        reason = ctypes.c_uint32.from_address(v.run_addr + field_offset(kvm_run, "exit_reason")[0])
        port = ctypes.c_uint16.from_address(v.run_addr + field_offset(kvm_run, "u.io.port")[0])
        IO = ExitReason.IO
        head = m._ring.head if m._ring else None   # consume (discard) coalesced bytes, as cheaply as possible
        run, RUN = run_ioctl, int(Ioctl.RUN)   # the call pyvmm's loop makes
        exits = 0
        u0, s0 = _cpu()
        t0 = time.perf_counter()
        while True:
            run(fd, RUN, 0)
            exits += 1
            if head is not None:
                head[0] = head[1]
            if reason.value == IO and port.value == 0xF4:
                break
        t1 = time.perf_counter()
        u1, s1 = _cpu()
        return t1 - t0, u1 - u0, s1 - s0, exits, 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    guests = {"uart 0x3f8 (coalesced)": 0x3F8, "port 0x80 (one exit each)": 0x80,
              "port 0x3000, unclaimed (one exit each)": 0x3000}
    print(f"{a.count} OUTs per run, {a.runs} runs each, alternating; medians (min-max)")
    for label, port in guests.items():
        image = build("outloop.S", defines={"COUNT": a.count, "PORT": port})
        rows: dict[str, list] = {"pyvmm": [], "floor": []}
        for _ in range(a.runs):
            rows["pyvmm"].append(run_pyvmm(image))
            rows["floor"].append(run_floor(image))
        print(f"\n{label}")
        for who, runs in rows.items():
            exits = statistics.median(r[3] for r in runs)
            per = lambda i: [r[i] / r[3] * 1e6 for r in runs]  # noqa: E731
            fmt = lambda xs: f"{statistics.median(xs):6.2f} ({min(xs):.2f}-{max(xs):.2f})"  # noqa: E731
            line = (f"  {who:5}  exits {exits:8.0f}  wall/exit {fmt(per(0))} us  user/exit {fmt(per(1))} us  "
                    f"sys/exit {fmt(per(2))} us  wall {statistics.median(r[0] for r in runs):.3f} s")
            if who == "pyvmm" and runs[0][4]:
                line += f"  bytes/exit {statistics.median(r[4] / r[3] for r in runs):.0f}"
            print(line)
        if label != "uart 0x3f8 (coalesced)":
            user = {who: statistics.median(r[1] / r[3] for r in runs) for who, runs in rows.items()}
            print(f"  pyvmm user CPU per exit / floor's: {user['pyvmm'] / user['floor']:.2f}x")


if __name__ == "__main__":
    main()

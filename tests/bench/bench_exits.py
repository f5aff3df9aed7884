"""Exit cost of pyvmm's run loop beside the floor (a bare ctypes loop that only calls KVM_RUN), same run.

Usage: python tests/bench/bench_exits.py [--count 100000] [--runs 5] [--callgrind [--cg-runs 3]]
Guests: 100,000 OUTs to COM1 and to port 0x80 (both buffered in the coalesced ring), to port 0x92 (fast A20, a
Python device, one exit each), to port 0x3000 (unclaimed, one exit each), 100,000 INs from port 0x80 (the POST-code
device), and 100,000 reads of unclaimed MMIO. Prints medians (and min-max) of wall and user CPU per
exit, exits per byte for the UART, and pyvmm's user CPU per exit over the floor's, both medians of the same
alternating rounds.
User and system CPU come from getrusage, which this kernel may split by sampling at its tick: take enough runs.

--callgrind counts instead: user-mode instructions per exit of the loop's thread under valgrind's callgrind
(deterministic, where getrusage scatters by +-30 %; KVM_RUN itself passes through valgrind, the guest runs in KVM).
Each loop runs in a thread of its own (callgrind --separate-threads=yes); per exit = (its instructions with
3N exits - with N) / 2N, so the thread's start-up and the loop's set-up cancel. N = --cg-count (1000).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvm.ioctl import run_ioctl  # noqa: E402
from kvm.uapi import ExitReason, Ioctl, field_offset, kvm_run  # noqa: E402
from loaders.flat import flat_plan  # noqa: E402
from tests.guests.build import build  # noqa: E402
from vmm.machine import Machine, MachineConfig, Outcome  # noqa: E402

# label -> (guest source, port, one exit per access?): the first two are buffered by KVM in the coalesced ring.
GUESTS = {"uart 0x3f8 (coalesced)": ("outloop.S", 0x3F8, False),
          "port 0x80, POST code (coalesced)": ("outloop.S", 0x80, False),
          "port 0x92, fast A20: a Python device (one exit each)": ("outloop.S", 0x92, True),
          "port 0x3000, unclaimed (one exit each)": ("outloop.S", 0x3000, True),
          "in from port 0x80: a Python device (one exit each)": ("inloop.S", 0x80, True),
          "mmio read, unclaimed (one exit each)": ("mmio_unclaimed.S", 0, True)}


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
        assert r.outcome == Outcome.EXIT, r
        return t1 - t0, u1 - u0, s1 - s0, sum(m.exit_counts), len(out)


def floor_loop(fd: int, reason: ctypes.c_uint32, port: ctypes.c_uint16, head: memoryview | None, result: list) -> None:
    """Call KVM_RUN until the guest writes port 0xf4, discarding the serial ring; append (wall, user, sys, exits, 0).
    Everything it uses per exit is a local, as in pyvmm's loop."""
    run, RUN, IO = run_ioctl, int(Ioctl.RUN), ExitReason.IO   # the call pyvmm's loop makes
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
    result.append((t1 - t0, u1 - u0, s1 - s0, exits, 0))


def run_floor(image: bytes, threaded: bool = False, plan=None) -> tuple[float, float, float, int, int]:
    """The same guest (or `plan`) under floor_loop (on a thread of its own with threaded=True, as pyvmm's loop
    runs)."""
    with Machine(MachineConfig(memory=64 << 20)) as m:
        m.load(plan or flat_plan(image))
        v = m.vm.vcpus[0]
        reason = ctypes.c_uint32.from_address(v.run_addr + field_offset(kvm_run, "exit_reason")[0])
        port = ctypes.c_uint16.from_address(v.run_addr + field_offset(kvm_run, "u.io.port")[0])
        head = m.writes.ring.head if m.writes.ring else None   # consume (discard) coalesced bytes, as cheaply as possible
        result: list = []
        args = (v.fd, reason, port, head, result)
        if threaded:
            t = threading.Thread(target=floor_loop, args=args)
            t.start()
            t.join()
        else:
            floor_loop(*args)
        return result[0]


def floor_process(elf_path: str) -> None:
    """The floor loop as a process of its own on an ELF that `pyvmm --kernel` runs (tests/guests/pvh_bench.S, long
    mode at its entry), so tests/bench/bench_vs_qemu.py times it in the same rounds as pyvmm and QEMU; exits with
    status 1, the status both VMMs give the guest's debug exit."""
    from loaders.linux.kernel import parse_vmlinux
    k = parse_vmlinux(Path(elf_path).read_bytes())
    text = next(s for s in k.segments if s.gpa <= k.entry < s.gpa + s.memsz)
    run_floor(b"", plan=flat_plan(bytes(text.data), load_addr=text.gpa, entry=k.entry))
    sys.exit(1)


def child(loop: str, source: str, port: int, count: int) -> None:
    """One run of one loop (under callgrind, started by callgrind_rounds)."""
    image = build(source, defines={"COUNT": count, "PORT": port})
    r = run_pyvmm(image) if loop == "pyvmm" else run_floor(image, threaded=True)
    assert count < r[3] <= count + 6, r      # the loop's exits, then the guest's last checks and its debug exit


def _loop_thread_instructions(prefix: str) -> int:
    """The instructions of the busiest thread but the main one (the loop's) in callgrind's per-thread files."""
    counts = []
    for f in Path(prefix).parent.glob(Path(prefix).name + "-*"):
        if f.name.endswith("-01"):
            continue
        for line in f.read_text().splitlines():
            if line.startswith("totals:"):
                counts.append(int(line.split()[1]))
    if not counts:
        raise RuntimeError(f"no callgrind thread files at {prefix}-*")
    return max(counts)


def callgrind_rounds(count: int, runs: int) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("bench_exits: --callgrind needs valgrind (apt-get install valgrind)")
    env = dict(os.environ, PYTHONHASHSEED="0")
    print(f"callgrind: user-mode instructions per exit of the loop's thread, (3N - N exits) / 2N, N = {count}; "
          f"{runs} runs each; medians (min-max)")
    for label, (source, port, each) in GUESTS.items():
        if not each:
            continue
        for n in (count, 3 * count):      # built once, outside the counted runs
            build(source, defines={"COUNT": n, "PORT": port})
        per: dict[str, list[float]] = {"pyvmm": [], "floor": []}
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(runs):
                for loop in per:
                    got = []
                    for n in (count, 3 * count):
                        prefix = f"{tmp}/{loop}-{n}-{i}"
                        subprocess.run([valgrind, "--tool=callgrind", "--separate-threads=yes",
                                        f"--callgrind-out-file={prefix}", sys.executable, __file__, "--child", loop,
                                        source, str(port), str(n)], check=True, env=env, cwd=ROOT,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        got.append(_loop_thread_instructions(prefix))
                    per[loop].append((got[1] - got[0]) / (2 * count))
        print(f"\n{label}")
        for loop, xs in per.items():
            print(f"  {loop:5}  instructions/exit {statistics.median(xs):7.0f} ({min(xs):.0f}-{max(xs):.0f})")
        print(f"  pyvmm instructions per exit / floor's: "
              f"{statistics.median(per['pyvmm']) / statistics.median(per['floor']):.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--callgrind", action="store_true", help="count instructions per exit under callgrind instead")
    ap.add_argument("--cg-count", type=int, default=1000)
    ap.add_argument("--cg-runs", type=int, default=3)
    ap.add_argument("--child", nargs=4, metavar=("LOOP", "SOURCE", "PORT", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--floor-kernel", metavar="ELF", help="run the floor loop on ELF in this process and exit 1 "
                    "(a cell of bench_vs_qemu.py's exit table)")
    a = ap.parse_args()
    if a.floor_kernel:
        floor_process(a.floor_kernel)
    if a.child:
        loop, source, port, count = a.child
        child(loop, source, int(port), int(count))
        return
    if a.callgrind:
        callgrind_rounds(a.cg_count, a.cg_runs)
        return
    print(f"{a.count} accesses per run, {a.runs} runs each, alternating; medians (min-max); "
          f"load average {os.getloadavg()[0]:.1f}")
    for label, (source, port, each) in GUESTS.items():
        image = build(source, defines={"COUNT": a.count, "PORT": port})
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
        if each:
            user = {who: statistics.median(r[1] / r[3] for r in runs) for who, runs in rows.items()}
            ratio = f"{user['pyvmm'] / user['floor']:.2f}x" if user["floor"] else "- (no user CPU sampled: more --count)"
            print(f"  pyvmm user CPU per exit / floor's: {ratio}")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

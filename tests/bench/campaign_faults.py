"""The fault campaign (not part of the default test run): create/destroy cycles measured for file descriptors and
memory, every ioctl of a launch failed in turn for several vCPU counts and errnos, and EINTR/EAGAIN storms on KVM_RUN
under the hostile guest. Prints what it injected and how each run ended; exits 1 on any undocumented ending.

Usage: python tests/bench/campaign_faults.py [--cycles 1000] [--storms 20]
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvm.errors import KvmError  # noqa: E402
from tests.faults import EintrStorm, IoctlFaults, fail_at  # noqa: E402
from tests.guests.run import run_flat_guest  # noqa: E402
from tests.hostile import HEALTHY, hostile_image, run_hostile_machine  # noqa: E402
import vmm.machine  # noqa: E402
from vmm.machine import Machine, MachineConfig  # noqa: E402


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_anon_kib(trim: bool) -> int:
    if trim:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(Path("/proc/self/status").read_text().split("RssAnon:")[1].split()[0])


def cycles(n: int) -> bool:
    cfg = MachineConfig(memory=64 << 20, cpus=2)
    for _ in range(10):
        with Machine(cfg):
            pass
    gc.collect()
    f0, raw0, trim0 = fds(), rss_anon_kib(False), rss_anon_kib(True)
    t = time.monotonic()
    marks = []
    for i in range(1, n + 1):
        with Machine(cfg) as m:
            m.memory.write(0x1000, b"x" * 4096)
        m = None
        if i % max(1, n // 4) == 0:
            marks.append((i, fds(), rss_anon_kib(False)))
    gc.collect()
    f1, raw1, trim1 = fds(), rss_anon_kib(False), rss_anon_kib(True)
    print(f"create/destroy: {n} machines (64 MiB, 2 vCPUs) in {time.monotonic() - t:.0f} s; fds {f0} -> {f1}; "
          f"RssAnon {raw0} -> {raw1} KiB raw, {trim0} -> {trim1} KiB after malloc_trim; "
          f"along the way (cycle, fds, raw KiB): {marks}")
    return f1 == f0 and trim1 - trim0 < 2048


def every_ioctl(cpus_list=(1, 2, 4)) -> tuple[int, Counter, bool]:
    errs = [errno.ENOMEM, errno.EFAULT, errno.EINVAL, errno.EINTR, errno.EBADF, errno.E2BIG]
    injected, ends, ok = 0, Counter(), True
    for cpus in cpus_list:
        counting = IoctlFaults(lambda n, i: None).install()
        want = (cpus << 1) | 1
        assert run_flat_guest("smp.S", cpus=cpus, defines={"NCPUS": cpus}).status == want
        total = len(counting.calls)
        base = fds()
        for k in range(total):
            for err in errs:
                fail_at(k, err).install()
                try:
                    r = run_flat_guest("smp.S", cpus=cpus, defines={"NCPUS": cpus}, timeout=20)
                    end = f"status {r.status}"
                    ok &= r.status in (want, 3)
                except KvmError:
                    end = "KvmError (status 3 from the CLI)"
                injected += 1
                ends[end] += 1
                if fds() != base:
                    print(f"fd leak: {cpus} vCPUs, ioctl {k} ({counting.calls[k][0]}) failing with {err}")
                    ok = False
        print(f"every ioctl: {cpus} vCPUs, {total} ioctls x {len(errs)} errnos", flush=True)
    IoctlFaults(lambda n, i: None).install()
    return injected, ends, ok


def storms(n: int) -> tuple[int, int, bool]:
    image = hostile_image()
    injected = passed = 0
    ok = True
    for i in range(n):
        calm = run_hostile_machine(seed=100 + i, ops=300, cpus=1, image=image)
        storm = EintrStorm(rate=0.3 + 0.6 * (i % 3) / 2, err=(errno.EINTR, errno.EAGAIN)[i % 2], seed=i).install()
        stormy = run_hostile_machine(seed=100 + i, ops=300, cpus=1, image=image)
        vmm.machine.run_ioctl = storm.real                  # calm again for the next pair
        injected += storm.injected
        passed += storm.passed
        if not (calm.status == stormy.status == HEALTHY and calm.counts == stormy.counts):
            print(f"storm {i}: {calm.status} {stormy.status} {calm.counts} {stormy.counts}")
            ok = False
    print(f"EINTR/EAGAIN storms: {n} runs, {injected:,} KVM_RUN calls interrupted, {passed:,} passed; "
          f"guest-visible counts identical to calm runs: {ok}")
    return injected, passed, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--storms", type=int, default=20)
    a = ap.parse_args()
    ok = cycles(a.cycles)
    injected, ends, ok2 = every_ioctl()
    print(f"ioctl faults injected: {injected}; endings: {dict(ends)}")
    s_inj, _, ok3 = storms(a.storms)
    print(f"total faults injected: {injected + s_inj:,}; all endings documented and no leaks: {ok and ok2 and ok3}")
    return 0 if ok and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())

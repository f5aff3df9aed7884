"""Fault injection for the KVM binding: make chosen ioctls fail with a chosen errno, as a kernel out of memory
(ENOMEM on a memory slot), a bad address (EFAULT) or a signal storm (EINTR) would.

kvm/vm.py, kvm/vcpu.py and kvm/system.py each import `ioctl` by name, so the wrapper replaces that name in each;
KVM_RUN goes through vmm.machine.run_ioctl (no errno swap), which `eintr_storm` wraps. Used in-process by
tests/test_faults.py and, through `python -c`, in child processes that run the whole CLI.
"""

from __future__ import annotations

import ctypes
import random
from typing import Callable

import kvm.system
import kvm.vcpu
import kvm.vm
import vmm.machine
from kvm.errors import KvmError
from kvm.ioctl import ioctl as real_ioctl, thread_errno

MODULES = (kvm.system, kvm.vcpu, kvm.vm)


class IoctlFaults:
    """Counts every ioctl the binding makes (by name) and fails the ones `decide(name, index)` returns an errno for;
    index counts all calls from 0. `calls` records (name, injected errno or 0)."""

    def __init__(self, decide: Callable[[str, int], int | None]) -> None:
        self.decide = decide
        self.calls: list[tuple[str, int]] = []

    def __call__(self, fd: int, request: int, arg=0, name: str = "") -> int:
        err = self.decide(name, len(self.calls))
        self.calls.append((name, err or 0))
        if err:
            raise KvmError(name or f"ioctl 0x{request:x}", err)
        return real_ioctl(fd, request, arg, name)

    def install(self, setattr_: Callable[[object, str, object], None] = setattr) -> "IoctlFaults":
        for m in MODULES:
            setattr_(m, "ioctl", self)
        return self

    @property
    def injected(self) -> int:
        return sum(1 for _, e in self.calls if e)


def fail_named(name: str, err: int) -> IoctlFaults:
    """Every call of ioctl `name` fails with err."""
    return IoctlFaults(lambda n, i: err if n == name else None)


def fail_at(index: int, err: int) -> IoctlFaults:
    """Only the index-th ioctl call fails."""
    return IoctlFaults(lambda n, i: err if i == index else None)


class EintrStorm:
    """KVM_RUN returning -1/EINTR (or EAGAIN) before `rate` of its calls, as under a signal storm; counts both."""

    def __init__(self, rate: float = 0.5, err: int = 4, seed: int = 1) -> None:
        self.rate, self.err = rate, err
        self.rng = random.Random(seed)
        self.real = vmm.machine.run_ioctl
        self.injected = self.passed = 0

    def __call__(self, fd: int, request: int, arg: int) -> int:
        if self.rng.random() < self.rate:
            self.injected += 1
            thread_errno()[0] = self.err
            return -1
        self.passed += 1
        return self.real(fd, request, arg)

    def install(self, setattr_: Callable[[object, str, object], None] = setattr) -> "EintrStorm":
        setattr_(vmm.machine, "run_ioctl", self)
        return self


__all__ = ["EintrStorm", "IoctlFaults", "ctypes", "fail_at", "fail_named"]

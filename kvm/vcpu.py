"""A KVM vCPU: register state, CPUID, MSRs, LAPIC, MP state, and the mapped kvm_run exit page."""

import ctypes
import errno
import os
import threading

# `signal` wraps these functions to hand back enums (it imports `enum` and converts its constants at import);
# `_signal`, the C module underneath it in CPython, has the same functions and plain ints.
import _signal as signal

from . import uapi
from .errors import KvmError
from .ioctl import ioctl
from .mman import HostMapping
from .uapi import Ioctl

KICK_SIGNAL = signal.SIGUSR1


def install_kick_handler() -> None:
    """Make KICK_SIGNAL harmless to the process so it only interrupts KVM_RUN (call from the main thread)."""
    if signal.getsignal(KICK_SIGNAL) in (signal.SIG_DFL, None):
        signal.signal(KICK_SIGNAL, lambda *_: None)
    signal.siginterrupt(KICK_SIGNAL, True)


class Vcpu:
    """One vCPU fd with its kvm_run page; the run loop reads the page through `page.view` at offsets taken from
    uapi.kvm_run, slow paths through `run` (the same page as a ctypes kvm_run)."""

    def __init__(self, vm: "Vm", index: int) -> None:  # noqa: F821
        self.vm = vm
        self.index = index
        self.fd = ioctl(vm.fd, Ioctl.CREATE_VCPU, index, "KVM_CREATE_VCPU")
        try:
            self.page = HostMapping(vm.kvm.vcpu_mmap_size, fd=self.fd, shared=True, what="mmap kvm_run")
        except BaseException:
            os.close(self.fd)
            raise
        self.run_addr = self.page.addr
        self.run = uapi.kvm_run.from_address(self.run_addr)
        self.thread_id: int | None = None
        self._kick_lock = threading.Lock()

    # --- running -------------------------------------------------------------------------
    def attach_thread(self) -> None:
        """Record the calling thread as the one running this vCPU, so kick() can signal it."""
        with self._kick_lock:
            self.thread_id = threading.get_ident()

    def detach_thread(self) -> None:
        """Call before the vCPU thread ends: signalling a finished thread's id is undefined (it crashes glibc)."""
        with self._kick_lock:
            self.thread_id = None

    def kick(self) -> None:
        """Make a KVM_RUN in progress (or about to start) on this vCPU return as soon as possible."""
        self.run.immediate_exit = 1
        with self._kick_lock:
            tid = self.thread_id
            if tid is not None:
                try:
                    signal.pthread_kill(tid, KICK_SIGNAL)
                except (ProcessLookupError, OSError):
                    pass

    # --- state ---------------------------------------------------------------------------
    def get_regs(self) -> uapi.kvm_regs:
        r = uapi.kvm_regs()
        ioctl(self.fd, Ioctl.GET_REGS, r, "KVM_GET_REGS")
        return r

    def set_regs(self, r: uapi.kvm_regs) -> None:
        ioctl(self.fd, Ioctl.SET_REGS, r, "KVM_SET_REGS")

    def get_sregs(self) -> uapi.kvm_sregs:
        s = uapi.kvm_sregs()
        ioctl(self.fd, Ioctl.GET_SREGS, s, "KVM_GET_SREGS")
        return s

    def set_sregs(self, s: uapi.kvm_sregs) -> None:
        ioctl(self.fd, Ioctl.SET_SREGS, s, "KVM_SET_SREGS")

    def get_fpu(self) -> uapi.kvm_fpu:
        f = uapi.kvm_fpu()
        ioctl(self.fd, Ioctl.GET_FPU, f, "KVM_GET_FPU")
        return f

    def set_fpu(self, f: uapi.kvm_fpu) -> None:
        ioctl(self.fd, Ioctl.SET_FPU, f, "KVM_SET_FPU")

    def get_vcpu_events(self) -> uapi.kvm_vcpu_events:
        e = uapi.kvm_vcpu_events()
        ioctl(self.fd, Ioctl.GET_VCPU_EVENTS, e, "KVM_GET_VCPU_EVENTS")
        return e

    def set_vcpu_events(self, e: uapi.kvm_vcpu_events) -> None:
        ioctl(self.fd, Ioctl.SET_VCPU_EVENTS, e, "KVM_SET_VCPU_EVENTS")

    def get_xsave(self) -> uapi.kvm_xsave:
        x = uapi.kvm_xsave()
        ioctl(self.fd, Ioctl.GET_XSAVE, x, "KVM_GET_XSAVE")
        return x

    def set_xsave(self, x: uapi.kvm_xsave) -> None:
        ioctl(self.fd, Ioctl.SET_XSAVE, x, "KVM_SET_XSAVE")

    def get_xcrs(self) -> dict[int, int]:
        x = uapi.kvm_xcrs()
        ioctl(self.fd, Ioctl.GET_XCRS, x, "KVM_GET_XCRS")
        return {x.xcrs[i].xcr: x.xcrs[i].value for i in range(min(x.nr_xcrs, 16))}

    def set_xcr(self, index: int, value: int) -> None:
        """Set one XCR; KvmError (EINVAL) when KVM refuses the value, as XSETBV would #GP."""
        x = uapi.kvm_xcrs(nr_xcrs=1)
        x.xcrs[0].xcr, x.xcrs[0].value = index, value
        ioctl(self.fd, Ioctl.SET_XCRS, x, "KVM_SET_XCRS")

    def set_cpuid(self, entries: list[uapi.kvm_cpuid_entry2]) -> None:
        buf = uapi.kvm_cpuid2(len(entries))
        buf.nent = len(entries)
        for i, e in enumerate(entries):
            buf.entries[i] = e
        ioctl(self.fd, Ioctl.SET_CPUID2, buf, "KVM_SET_CPUID2")

    def set_msrs(self, msrs: dict[int, int]) -> None:
        buf = uapi.kvm_msrs(len(msrs))
        buf.nmsrs = len(msrs)
        for i, (k, v) in enumerate(msrs.items()):
            buf.entries[i].index = k
            buf.entries[i].data = v
        n = ioctl(self.fd, Ioctl.SET_MSRS, buf, "KVM_SET_MSRS")
        if n != len(msrs):
            bad = list(msrs)[n]
            raise KvmError("KVM_SET_MSRS", errno.EINVAL, f"KVM refused MSR {bad:#x}")

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        buf = uapi.kvm_msrs(len(indices))
        buf.nmsrs = len(indices)
        for i, k in enumerate(indices):
            buf.entries[i].index = k
        n = ioctl(self.fd, Ioctl.GET_MSRS, buf, "KVM_GET_MSRS")
        return {buf.entries[i].index: buf.entries[i].data for i in range(n)}

    def get_lapic(self) -> bytearray:
        s = uapi.kvm_lapic_state()
        ioctl(self.fd, Ioctl.GET_LAPIC, s, "KVM_GET_LAPIC")
        return bytearray(ctypes.string_at(ctypes.addressof(s), 1024))

    def set_lapic(self, regs: bytes | bytearray) -> None:
        s = uapi.kvm_lapic_state()
        ctypes.memmove(ctypes.addressof(s), bytes(regs), 1024)
        ioctl(self.fd, Ioctl.SET_LAPIC, s, "KVM_SET_LAPIC")

    def get_mp_state(self) -> int:
        s = uapi.kvm_mp_state()
        ioctl(self.fd, Ioctl.GET_MP_STATE, s, "KVM_GET_MP_STATE")
        return s.mp_state

    def set_mp_state(self, state: int) -> None:
        ioctl(self.fd, Ioctl.SET_MP_STATE, uapi.kvm_mp_state(state), "KVM_SET_MP_STATE")

    def translate(self, linear: int) -> int | None:
        """Guest-physical address of a linear address under the vCPU's current paging, or None."""
        t = uapi.kvm_translation(linear_address=linear)
        try:
            ioctl(self.fd, Ioctl.TRANSLATE, t, "KVM_TRANSLATE")
        except KvmError:
            return None
        return t.physical_address if t.valid else None

    def close(self) -> None:
        if self.fd >= 0:
            self.run = None  # type: ignore[assignment]
            self.page.close()
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Vcpu":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

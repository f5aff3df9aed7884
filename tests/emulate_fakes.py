"""A vCPU and guest RAM without KVM, for unit tests of vmm/emulate: the same ioctl-shaped methods over ctypes
structures (kvm.uapi) and a bytearray."""

from __future__ import annotations


from kvm import uapi
from kvm.errors import KvmError


class FakeMemory:
    def __init__(self, size: int = 16 << 20) -> None:
        self.data = bytearray(size)

    def contains(self, gpa: int, size: int) -> bool:
        return 0 <= gpa and gpa + size <= len(self.data)

    def read(self, gpa: int, size: int) -> bytes:
        if not self.contains(gpa, size):
            raise ValueError(f"{gpa:#x} outside RAM")
        return bytes(self.data[gpa:gpa + size])

    def write(self, gpa: int, data: bytes) -> None:
        if not self.contains(gpa, len(data)):
            raise ValueError(f"{gpa:#x} outside RAM")
        self.data[gpa:gpa + len(data)] = data


class FakeVcpu:
    """64-bit long mode, flat segments, paging off unless a test sets CR0.PG and CR3."""

    index = 0

    def __init__(self, cpuid: dict[tuple[int, int], dict[str, int]] | None = None) -> None:
        self.regs = uapi.kvm_regs(rflags=2)
        self.sregs = s = uapi.kvm_sregs()
        s.cs.l, s.cs.present, s.cs.s, s.cs.type, s.cs.selector = 1, 1, 1, 0xB, 8
        s.ss.present, s.ss.db, s.ss.selector = 1, 1, 0x10
        s.cr0, s.cr4, s.efer = 0x10033, 0x40620, 0x500      # PE MP ET NE WP; OSXSAVE; LME LMA
        self.events = uapi.kvm_vcpu_events()
        self.xsave = uapi.kvm_xsave()
        self.xsave.region[0], self.xsave.region[1], self.xsave.region[24], self.xsave.region[25] = 0x7F, 3, 0x80, 0x1F
        self.xsave.region[28:32] = [0xFF, 0xFF, 0, 0]
        self.xcr0 = 3
        self.msrs: dict[int, int] = {}
        self.cpuid = cpuid if cpuid is not None else {(0x80000001, 0): {"ecx": 1 << 5}, (7, 0): {"ebx": 1 << 3}}

    def get_regs(self):
        return uapi.kvm_regs.from_buffer_copy(self.regs)

    def set_regs(self, r) -> None:
        self.regs = uapi.kvm_regs.from_buffer_copy(r)

    def get_sregs(self):
        return uapi.kvm_sregs.from_buffer_copy(self.sregs)

    def set_sregs(self, s) -> None:
        self.sregs = uapi.kvm_sregs.from_buffer_copy(s)

    def get_vcpu_events(self):
        return uapi.kvm_vcpu_events.from_buffer_copy(self.events)

    def set_vcpu_events(self, e) -> None:
        self.events = uapi.kvm_vcpu_events.from_buffer_copy(e)

    def get_xsave(self):
        return uapi.kvm_xsave.from_buffer_copy(self.xsave)

    def set_xsave(self, x) -> None:
        self.xsave = uapi.kvm_xsave.from_buffer_copy(x)

    def get_xcrs(self) -> dict[int, int]:
        return {0: self.xcr0}

    def set_xcr(self, index: int, value: int) -> None:
        if index or not value & 1 or value & ~7 or (value & 4 and not value & 2):
            raise KvmError("KVM_SET_XCRS", 22)
        self.xcr0 = value

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        return {i: self.msrs.get(i, 0) for i in indices}

    def get_cpuid(self):
        out = []
        for (fn, idx), regs in self.cpuid.items():
            e = uapi.kvm_cpuid_entry2(function=fn, index=idx)
            for k, v in regs.items():
                setattr(e, k, v)
            out.append(e)
        return out


def place(vcpu: FakeVcpu, memory: FakeMemory, code: bytes, rip: int = 0x1000) -> None:
    memory.write(rip, code)
    vcpu.regs.rip = rip


def injected(vcpu: FakeVcpu) -> tuple[int, int] | None:
    e = vcpu.events.exception
    return (e.nr, e.error_code) if e.injected else None



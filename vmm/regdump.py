"""The register dump printed when a guest or KVM fails: enough to find the faulting instruction without a debugger."""

from __future__ import annotations

from kvm import Vcpu
from kvm.errors import KvmError
from kvm.uapi import SEGMENT_NAMES


def _code_bytes(vcpu: Vcpu, memory: "GuestMemory", linear: int) -> str:  # noqa: F821
    gpa = vcpu.translate(linear)
    if gpa is None:
        return f"code: linear {linear:#x} is not mapped"
    start = max(gpa - 16, gpa & ~0xFFF)
    end = min(gpa + 16, (gpa | 0xFFF) + 1)
    try:
        data = memory.read(start, end - start)
    except ValueError:
        return f"code: GPA {gpa:#x} is outside guest RAM"
    parts = [(f"<{b:02x}>" if start + i == gpa else f"{b:02x}") for i, b in enumerate(data)]
    return f"code at GPA {gpa:#x}: " + " ".join(parts)


def register_dump(vcpu: Vcpu, memory: "GuestMemory") -> str:  # noqa: F821
    """Multi-line text: GPRs, segments, descriptor tables, control registers and the code bytes at RIP."""
    try:
        r = vcpu.get_regs()
        s = vcpu.get_sregs()
    except KvmError as e:
        return f"vCPU {vcpu.index}: registers unavailable ({e})"
    g = lambda n: getattr(r, n)  # noqa: E731
    lines = [f"vCPU {vcpu.index} registers:"]
    names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
    for i in range(0, 16, 4):
        lines.append("  " + "  ".join(f"{n.upper():>3}={g(n):016x}" for n in names[i:i + 4]))
    lines.append(f"  RIP={r.rip:016x}  RFLAGS={r.rflags:08x}")
    for n in SEGMENT_NAMES:
        seg = getattr(s, n)
        lines.append(f"  {n.upper():<3} sel={seg.selector:04x} base={seg.base:016x} limit={seg.limit:08x} "
                     f"type={seg.type:x} s={seg.s} dpl={seg.dpl} p={seg.present} l={seg.l} db={seg.db} g={seg.g}")
    lines.append(f"  GDT base={s.gdt.base:016x} limit={s.gdt.limit:04x}  IDT base={s.idt.base:016x} limit={s.idt.limit:04x}")
    lines.append(f"  CR0={s.cr0:016x} CR2={s.cr2:016x} CR3={s.cr3:016x} CR4={s.cr4:016x}")
    lines.append(f"  CR8={s.cr8:016x} EFER={s.efer:016x} APIC_BASE={s.apic_base:016x}")
    linear = r.rip if s.efer & 0x400 and s.cs.l else (s.cs.base + r.rip) & 0xFFFFFFFF
    lines.append("  " + _code_bytes(vcpu, memory, linear))
    return "\n".join(lines)

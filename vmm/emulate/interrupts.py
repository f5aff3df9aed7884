"""int3 and int n, delivered in software exactly as the CPU delivers a software interrupt (Intel SDM vol. 3
6.12 and 6.14): IDT gate checks (#GP(vector*8+2) for a bad gate or one whose DPL is below CPL, #NP for a
missing one), the stack switch (TSS RSP0-2 or an IST stack), the frame, RFLAGS, and CS:RIP from the gate, with
the return address the instruction after the int. Done here rather than by injecting a soft event through
KVM_SET_VCPU_EVENTS because KVM computes a soft event's return address from an instruction length it only
knows for exits it decoded itself."""

from __future__ import annotations

import struct

from .cpu import AC, IF, NT, RF, TF, VM, Cpu
from .decode import Insn
from .faults import GP, NP, CannotEmulate, GuestFault


def _descriptor(cpu: Cpu, selector: int) -> int:
    """The 8-byte GDT descriptor for a code selector; #GP(selector) when it is outside the GDT or not code."""
    if selector & 4:
        raise CannotEmulate("interrupt gate selects an LDT code segment")
    s = cpu.sregs
    index = selector & ~7
    if not index or index + 7 > s.gdt.limit:
        raise GuestFault(GP, selector & ~3)
    d = int.from_bytes(cpu.system.read(s.gdt.base + index, 8), "little")
    if not (d >> 44 & 1 and d >> 43 & 1):          # S=1 and executable
        raise GuestFault(GP, selector & ~3)
    if not d >> 47 & 1:
        raise GuestFault(NP, selector & ~3)
    return d


def _load_cs(cpu: Cpu, selector: int, d: int, cpl: int) -> None:
    """Load CS from descriptor d; KVM_SET_SREGS (which also resets KVM's MMU context) only if CS changes."""
    cs = cpu.sregs.cs
    before = bytes(cs)
    limit = (d & 0xFFFF) | ((d >> 48) & 0xF) << 16
    cs.g = d >> 55 & 1
    cs.limit = (limit << 12 | 0xFFF) if cs.g else limit
    cs.base = ((d >> 16) & 0xFFFFFF) | ((d >> 56) & 0xFF) << 24
    cs.selector = (selector & ~3) | cpl
    cs.type, cs.s, cs.dpl, cs.present = d >> 40 & 0xF, 1, cpl, 1
    cs.l, cs.db, cs.avl, cs.unusable = d >> 53 & 1, d >> 54 & 1, d >> 52 & 1, 0
    cpu.sregs_dirty |= bytes(cs) != before


def deliver(cpu: Cpu, vector: int, return_ip: int) -> None:
    """Deliver software interrupt `vector` now, the frame returning to return_ip."""
    if not cpu.protected:
        return _deliver_real(cpu, vector, return_ip)
    s, r = cpu.sregs, cpu.regs
    gate_size = 16 if cpu.mode == 64 or s.efer & 0x400 else 8
    err = vector * 8 + 2
    if vector * gate_size + gate_size - 1 > s.idt.limit:
        raise GuestFault(GP, err)
    raw = cpu.system.read(s.idt.base + vector * gate_size, gate_size)
    lo = int.from_bytes(raw[:8], "little")
    kind, dpl, present = lo >> 40 & 0xF, lo >> 45 & 3, lo >> 47 & 1
    offset = (lo & 0xFFFF) | ((lo >> 48) & 0xFFFF) << 16
    if gate_size == 16:
        offset |= int.from_bytes(raw[8:12], "little") << 32
    if kind not in (0xE, 0xF) or dpl < cpu.cpl:
        if kind == 5 and gate_size == 8:
            raise CannotEmulate("software interrupt through a task gate")
        raise GuestFault(GP, err)
    if not present:
        raise GuestFault(NP, err)
    selector = lo >> 16 & 0xFFFF
    d = _descriptor(cpu, selector)
    conforming = d >> 42 & 1
    new_cpl = cpu.cpl if conforming else d >> 45 & 3
    if new_cpl > cpu.cpl:
        raise GuestFault(GP, selector & ~3)
    flags = r.rflags
    if gate_size == 16:
        ist = lo >> 32 & 7
        rsp, ss_sel = r.rsp, s.ss.selector
        if ist or new_cpl < cpu.cpl:
            tss = s.tr.base + (0x24 + 8 * (ist - 1) if ist else 4 + 8 * new_cpl)
            rsp = int.from_bytes(cpu.system.read(tss, 8), "little")
        new_rsp = (rsp & ~0xF) - 40
        frame = struct.pack("<5Q", return_ip, s.cs.selector, flags, r.rsp, ss_sel)
        cpu.system.write(new_rsp, frame) if new_cpl < cpu.cpl else cpu.paging.write(new_rsp, frame)
        if new_cpl < cpu.cpl:
            s.ss.selector, s.ss.dpl = new_cpl, new_cpl
            s.ss.unusable = 1
            cpu.sregs_dirty = True
    else:
        if new_cpl != cpu.cpl or not d >> 54 & 1:
            raise CannotEmulate("32-bit software interrupt with a privilege change or to 16-bit code")
        width = 0xFFFFFFFF if s.ss.db else 0xFFFF
        new_rsp = (r.rsp - 12) & width
        frame = struct.pack("<3I", return_ip & 0xFFFFFFFF, s.cs.selector, flags & 0xFFFFFFFF)
        cpu.paging.write((s.ss.base + new_rsp) & 0xFFFFFFFF, frame)
        new_rsp |= r.rsp & ~width
    r.rsp = new_rsp
    r.rflags = flags & ~(TF | NT | RF | VM | (IF if kind == 0xE else 0))
    _load_cs(cpu, selector, d, new_cpl)
    r.rip = offset
    cpu.jumped = True


def _deliver_real(cpu: Cpu, vector: int, return_ip: int) -> None:
    """Real mode: the IVT entry at IDTR.base + 4n, a FLAGS/CS/IP frame on SS:SP."""
    if cpu.regs.rflags & VM:
        raise CannotEmulate("software interrupt in virtual-8086 mode")
    s, r = cpu.sregs, cpu.regs
    if vector * 4 + 3 > s.idt.limit:
        raise GuestFault(GP, 0)
    ip, cs = struct.unpack("<2H", cpu.system.read(s.idt.base + vector * 4, 4))
    sp = (r.rsp - 6) & 0xFFFF
    cpu.paging.write(s.ss.base + sp, struct.pack("<3H", return_ip & 0xFFFF, s.cs.selector, r.rflags & 0xFFFF))
    r.rsp = (r.rsp & ~0xFFFF) | sp
    r.rflags &= ~(IF | TF | AC)
    s.cs.selector, s.cs.base = cs, cs << 4
    cpu.sregs_dirty = True
    r.rip = ip
    cpu.jumped = True


def int3(cpu: Cpu, insn: Insn) -> None:
    deliver(cpu, 3, cpu.regs.rip + insn.length)


def int_n(cpu: Cpu, insn: Insn) -> None:
    deliver(cpu, insn.operands[0].value, cpu.regs.rip + insn.length)


HANDLERS = {"int3": int3, "int": int_n}

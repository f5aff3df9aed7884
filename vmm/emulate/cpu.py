"""The vCPU's state while one instruction is emulated: registers read once, operands through the guest's paging,
and everything written back at the end (nothing is written when the instruction faults)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

from .decode import CS, DS, ES, FS, GS, RIP, SS, Imm, Insn, Mem, Reg
from .faults import GP, SS as SS_FAULT, GuestFault
from .paging import EFER_LMA, Paging

GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENTS = {ES: "es", CS: "cs", SS: "ss", DS: "ds", FS: "fs", GS: "gs"}
CF, PF, AF, ZF, SF, TF, IF, DF, OF, NT, RF, VM, AC = (1, 4, 0x10, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800, 0x4000,
                                                     0x10000, 0x20000, 0x40000)
CR0_PE, CR0_MP, CR0_EM, CR0_TS, CR0_NE = 1, 2, 4, 8, 0x20
CR4_OSXSAVE = 1 << 18


class Cpu:
    """One emulation's view of a vCPU. `exclusive` pauses the other vCPUs (for lock-prefixed instructions)."""

    def __init__(self, vcpu, memory, exclusive: Callable[[], ContextManager] | None = None) -> None:
        self.vcpu = vcpu
        self.memory = memory
        self.regs = vcpu.get_regs()
        self.sregs = s = vcpu.get_sregs()
        self.sregs_dirty = False
        self.jumped = False               # the instruction set RIP itself (interrupt delivery)
        self._exclusive = exclusive
        self._cpuid: dict[tuple[int, int], object] | None = None
        vm86 = bool(self.regs.rflags & VM)
        if s.efer & EFER_LMA and s.cs.l:
            self.mode = 64
        elif s.cr0 & CR0_PE and s.cs.db and not vm86:
            self.mode = 32
        else:
            self.mode = 16
        self.protected = bool(s.cr0 & CR0_PE) and not vm86
        self.cpl = 3 if vm86 else (s.ss.dpl if self.protected else 0)
        self.paging = Paging(memory, s.cr0, s.cr3, s.cr4, s.efer, self.cpl)
        self.system = Paging(memory, s.cr0, s.cr3, s.cr4, s.efer, 0)   # implicit supervisor accesses (IDT, GDT)

    # --- registers -----------------------------------------------------------------------
    def reg(self, num: int, size: int) -> int:
        return getattr(self.regs, GPR_NAMES[num]) & ((1 << (8 * size)) - 1)

    def set_reg(self, num: int, size: int, value: int) -> None:
        """Write as the CPU does: a 32-bit result zero-extends to 64 bits, a 16-bit one merges."""
        name = GPR_NAMES[num]
        if size == 2:
            value = (getattr(self.regs, name) & ~0xFFFF) | (value & 0xFFFF)
        setattr(self.regs, name, value & ((1 << 64) - 1 if size == 8 else 0xFFFFFFFF if size == 4 else ~0))

    def set_flags(self, mask: int, value: int) -> None:
        self.regs.rflags = (self.regs.rflags & ~mask) | (value & mask)

    def code_address(self) -> int:
        """The linear address of the instruction at RIP."""
        if self.mode == 64:
            return self.regs.rip
        return (self.sregs.cs.base + self.regs.rip) & 0xFFFFFFFF

    # --- memory operands -----------------------------------------------------------------
    def linear(self, mem: Mem, insn: Insn) -> int:
        """The linear address of a memory operand; #GP(0)/#SS(0) for a non-canonical one in 64-bit mode."""
        ea = mem.disp
        if mem.base == RIP:
            ea += self.regs.rip + insn.length
        elif mem.base is not None:
            ea += self.reg(mem.base, 8)
        if mem.index is not None:
            ea += self.reg(mem.index, 8) * mem.scale
        ea &= (1 << (8 * mem.addr_size)) - 1
        if self.mode == 64:
            if mem.seg in (FS, GS):
                ea = (ea + getattr(self.sregs, SEGMENTS[mem.seg]).base) & ((1 << 64) - 1)
            if not -(1 << 47) <= (ea ^ (1 << 63)) - (1 << 63) < (1 << 47):
                raise GuestFault(SS_FAULT if mem.seg == SS else GP, 0)
            return ea
        return (getattr(self.sregs, SEGMENTS[mem.seg]).base + ea) & 0xFFFFFFFF

    def value(self, op: Reg | Mem | Imm, insn: Insn) -> int:
        if isinstance(op, Reg):
            return self.reg(op.num, op.size)
        if isinstance(op, Imm):
            return op.value
        return int.from_bytes(self.paging.read(self.linear(op, insn), op.size), "little")

    def store(self, op: Reg | Mem, insn: Insn, value: int) -> None:
        if isinstance(op, Reg):
            self.set_reg(op.num, op.size, value)
        else:
            self.paging.write(self.linear(op, insn), (value & ((1 << (8 * op.size)) - 1)).to_bytes(op.size, "little"))

    # --- the rest ------------------------------------------------------------------------
    def cpuid(self, leaf: int, sub: int = 0):
        """The guest's CPUID entry (what KVM_SET_CPUID2 gave it), or None."""
        if self._cpuid is None:
            self._cpuid = {(e.function, e.index): e for e in self.vcpu.get_cpuid()}
        return self._cpuid.get((leaf, sub)) or self._cpuid.get((leaf, 0))

    def exclusive(self, lock: bool) -> ContextManager:
        """With a lock prefix: the other vCPUs stay out of guest mode until the block ends."""
        return self._exclusive() if lock and self._exclusive is not None else nullcontext()

    def commit(self, next_rip: int) -> None:
        """Write the state back: RIP past the instruction unless the instruction jumped."""
        if not self.jumped:
            self.regs.rip = next_rip
            self.regs.rflags &= ~RF
        if self.sregs_dirty:
            self.vcpu.set_sregs(self.sregs)
        self.vcpu.set_regs(self.regs)

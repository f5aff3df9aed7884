"""cmpxchg8b / cmpxchg16b: compare EDX:EAX (RDX:RAX) with the memory operand; equal: store ECX:EBX (RCX:RBX),
ZF=1; else load it into EDX:EAX, ZF=0 (and write the old value back, as the CPU does). With lock the other
vCPUs are paused for the read-modify-write. cmpxchg16b needs a 16-byte aligned operand (#GP(0))."""

from __future__ import annotations

from .cpu import ZF, Cpu
from .decode import Insn
from .faults import GP, GuestFault


def cmpxchg8b(cpu: Cpu, insn: Insn) -> None:
    mem = insn.operands[0]
    size = mem.size
    half, bits = size // 2, size * 4
    address = cpu.linear(mem, insn)
    if size == 16 and address & 15:
        raise GuestFault(GP, 0)
    expected = cpu.reg(2, half) << bits | cpu.reg(0, half)
    with cpu.exclusive(insn.lock):
        old = int.from_bytes(cpu.paging.read(address, size), "little")
        if old == expected:
            cpu.paging.write(address, (cpu.reg(1, half) << bits | cpu.reg(3, half)).to_bytes(size, "little"))
        else:
            cpu.paging.write(address, old.to_bytes(size, "little"))
    if old == expected:
        cpu.set_flags(ZF, ZF)
    else:
        cpu.set_flags(ZF, 0)
        cpu.set_reg(0, half, old & ((1 << bits) - 1))
        cpu.set_reg(2, half, old >> bits)


HANDLERS = {"cmpxchg8b": cmpxchg8b, "cmpxchg16b": cmpxchg8b}

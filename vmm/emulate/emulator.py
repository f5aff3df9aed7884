"""Finish one instruction KVM's emulator gave up on: fetch, decode, execute against the vCPU's state, write back.

Faults the instruction raises are injected into the guest (KVM_SET_VCPU_EVENTS); an instruction pyvmm does not
know raises CannotEmulate with a line naming it, for the register dump."""

from __future__ import annotations

from typing import Callable, ContextManager

from . import bitcount, cmpxchg, interrupts, sse, x87, xsave
from .cpu import Cpu
from .decode import CannotDecode, MAX_LENGTH, NeedMoreBytes, decode
from .faults import GP, UD, CannotEmulate, GuestFault, inject
from .text import insn_text

HANDLERS: dict[str, Callable] = {**bitcount.HANDLERS, **x87.HANDLERS, **cmpxchg.HANDLERS, **xsave.HANDLERS,
                                 **interrupts.HANDLERS, **sse.HANDLERS}
KVM_INTERNAL_ERROR_EMULATION = 1
FLAG_INSTRUCTION_BYTES = 1


def exit_instruction_bytes(internal) -> bytes | None:
    """The instruction bytes KVM put in kvm_run's emulation_failure (flags, insn_size, insn_bytes[15] in data[0..2],
    Linux include/uapi/linux/kvm.h), or None when it gave none."""
    if internal.ndata < 3 or not internal.data[0] & FLAG_INSTRUCTION_BYTES:
        return None
    raw = internal.data[1].to_bytes(8, "little") + internal.data[2].to_bytes(8, "little")
    return raw[1:1 + min(raw[0], MAX_LENGTH)] or None


def _instruction(cpu: Cpu, given: bytes | None):
    """Decode the instruction at CS:RIP, from KVM's bytes when it gave them, else fetched through the page tables."""
    data = given if given else cpu.paging.fetch(cpu.code_address(), MAX_LENGTH)
    try:
        return decode(data, cpu.mode)
    except NeedMoreBytes:
        if given:
            return _instruction(cpu, None)
        cpu.paging.translate(cpu.code_address() + len(data), fetch=True)     # raises the #PF of the fetch
        raise CannotEmulate(f"instruction bytes {data.hex(' ')} end early") from None


def emulate(vcpu, memory, given: bytes | None = None,
            exclusive: Callable[[], ContextManager] | None = None) -> str:
    """Emulate the instruction at the vCPU's RIP; returns its mnemonic (or the fault injected, e.g. "popcnt #PF").

    Raises CannotEmulate (message names the instruction) when pyvmm cannot finish it."""
    cpu = Cpu(vcpu, memory, exclusive)
    insn = None
    try:
        try:
            insn = _instruction(cpu, given)
        except CannotDecode as e:
            if e.fault is None:
                data = given or cpu.paging.fetch(cpu.code_address(), MAX_LENGTH)
                raise CannotEmulate(f"no emulation for the instruction at RIP {cpu.regs.rip:#x}: {e} "
                                    f"(bytes {data.hex(' ')})") from None
            raise GuestFault(UD if e.fault == "UD" else GP, 0) from None
        handler = HANDLERS.get(insn.mnemonic)
        if handler is None:
            raise CannotEmulate(f"no emulation for `{insn_text(insn)}` at RIP {cpu.regs.rip:#x}")
        ran = handler(cpu, insn) or insn.mnemonic     # lzcnt without LZCNT runs as bsr, as on the CPU
    except GuestFault as fault:
        inject(vcpu, fault)
        return f"{insn.mnemonic if insn else 'decode'} {str(fault).split('(')[0]}"
    except CannotEmulate as e:
        if insn is not None and "`" not in str(e):
            raise CannotEmulate(f"`{insn_text(insn)}` at RIP {cpu.regs.rip:#x}: {e}") from None
        raise
    width = {16: 0xFFFF, 32: 0xFFFFFFFF, 64: (1 << 64) - 1}[cpu.mode]
    cpu.commit((cpu.regs.rip + insn.length) & width)
    return ran

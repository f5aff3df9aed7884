"""x87 control instructions on the guest's x87 state: fninit, fnclex, fnstsw, fnstcw, fldcw, fwait.

The state is read and written with KVM_GET/SET_XSAVE, not KVM_GET/SET_FPU: KVM_SET_FPU edits the legacy area
without marking x87 in use in the XSAVE header, so after a fninit (x87 in its init state) the guest's next
XRSTOR on entry would ignore the new control word.

#NM when CR0.EM or CR0.TS says so (fwait: TS and MP); the waiting forms (fwait, fldcw) raise #MF first when an
unmasked exception is pending (FSW.ES) and CR0.NE is set (Intel SDM vol. 1 8.7, vol. 3 table 2-2)."""

from __future__ import annotations

import ctypes
import struct

from .cpu import CR0_EM, CR0_MP, CR0_NE, CR0_TS, Cpu
from .decode import Insn
from .faults import MF, NM, GuestFault

FSW_EXCEPTIONS, FSW_SF, FSW_ES, FSW_B = 0x3F, 0x40, 0x80, 0x8000
_LEGACY = struct.Struct("<HHBxHQQ")        # FCW, FSW, abridged FTW, FOP, FIP, FDP (the FXSAVE layout)


class X87:
    """The x87 control fields of the vCPU's XSAVE area; store() writes them back with x87 marked in use."""

    def __init__(self, cpu: Cpu) -> None:
        self._vcpu = cpu.vcpu
        self._area = cpu.vcpu.get_xsave()
        self.fcw, self.fsw, self.ftw, self.fop, self.fip, self.fdp = _LEGACY.unpack_from(bytes(self._area.region), 0)

    def store(self) -> None:
        raw = _LEGACY.pack(self.fcw & 0xFFFF, self.fsw & 0xFFFF, self.ftw, self.fop, self.fip, self.fdp)
        ctypes.memmove(self._area.region, raw, len(raw))
        self._area.region[512] |= 1         # XSTATE_BV: x87 state is in use
        self._vcpu.set_xsave(self._area)


def _no_wait(cpu: Cpu) -> None:
    if cpu.sregs.cr0 & (CR0_EM | CR0_TS):
        raise GuestFault(NM)


def _wait(cpu: Cpu, fpu: X87) -> None:
    if fpu.fsw & FSW_ES and cpu.sregs.cr0 & CR0_NE:
        raise GuestFault(MF)


def fninit(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    fpu = X87(cpu)
    fpu.fcw, fpu.fsw, fpu.ftw = 0x37F, 0, 0        # the abridged tag word: 0 = all empty
    fpu.fop = fpu.fip = fpu.fdp = 0
    fpu.store()


def fnclex(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    fpu = X87(cpu)
    fpu.fsw &= ~(FSW_EXCEPTIONS | FSW_SF | FSW_ES | FSW_B)
    fpu.store()


def fnstsw(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    cpu.store(insn.operands[0], insn, X87(cpu).fsw)


def fnstcw(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    cpu.store(insn.operands[0], insn, X87(cpu).fcw)


def fldcw(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    fpu = X87(cpu)
    _wait(cpu, fpu)
    fpu.fcw = cpu.value(insn.operands[0], insn)
    if fpu.fsw & ~fpu.fcw & FSW_EXCEPTIONS:       # a newly unmasked exception is now pending
        fpu.fsw |= FSW_ES | FSW_B
    else:
        fpu.fsw &= ~(FSW_ES | FSW_B)
    fpu.store()


def fwait(cpu: Cpu, insn: Insn) -> None:
    if cpu.sregs.cr0 & CR0_TS and cpu.sregs.cr0 & CR0_MP:
        raise GuestFault(NM)
    _wait(cpu, X87(cpu))


HANDLERS = {"fninit": fninit, "fnclex": fnclex, "fnstsw": fnstsw, "fnstcw": fnstcw, "fldcw": fldcw,
            "fwait": fwait}

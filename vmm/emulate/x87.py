"""x87 control instructions through KVM_GET/SET_FPU: fninit, fnclex, fnstsw, fnstcw, fldcw, fwait.

#NM when CR0.EM or CR0.TS says so (fwait: TS and MP); the waiting forms (fwait, fldcw) raise #MF first when an
unmasked exception is pending (FSW.ES) and CR0.NE is set (Intel SDM vol. 1 8.7, vol. 3 table 2-2)."""

from __future__ import annotations

from .cpu import CR0_EM, CR0_MP, CR0_NE, CR0_TS, Cpu
from .decode import Insn
from .faults import MF, NM, GuestFault

FSW_EXCEPTIONS, FSW_SF, FSW_ES, FSW_B = 0x3F, 0x40, 0x80, 0x8000


def _no_wait(cpu: Cpu) -> None:
    if cpu.sregs.cr0 & (CR0_EM | CR0_TS):
        raise GuestFault(NM)


def _wait(cpu: Cpu, fpu) -> None:
    if fpu.fsw & FSW_ES and cpu.sregs.cr0 & CR0_NE:
        raise GuestFault(MF)


def fninit(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    fpu = cpu.vcpu.get_fpu()
    fpu.fcw, fpu.fsw, fpu.ftwx = 0x37F, 0, 0      # ftwx is the abridged tag word: 0 = all empty
    fpu.last_opcode = fpu.last_ip = fpu.last_dp = 0
    cpu.vcpu.set_fpu(fpu)


def fnclex(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    fpu = cpu.vcpu.get_fpu()
    fpu.fsw &= ~(FSW_EXCEPTIONS | FSW_SF | FSW_ES | FSW_B)
    cpu.vcpu.set_fpu(fpu)


def fnstsw(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    cpu.store(insn.operands[0], insn, cpu.vcpu.get_fpu().fsw)


def fnstcw(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    cpu.store(insn.operands[0], insn, cpu.vcpu.get_fpu().fcw)


def fldcw(cpu: Cpu, insn: Insn) -> None:
    _no_wait(cpu)
    fpu = cpu.vcpu.get_fpu()
    _wait(cpu, fpu)
    fpu.fcw = cpu.value(insn.operands[0], insn)
    if fpu.fsw & ~fpu.fcw & FSW_EXCEPTIONS:       # a newly unmasked exception is now pending
        fpu.fsw |= FSW_ES | FSW_B
    else:
        fpu.fsw &= ~(FSW_ES | FSW_B)
    cpu.vcpu.set_fpu(fpu)


def fwait(cpu: Cpu, insn: Insn) -> None:
    if cpu.sregs.cr0 & CR0_TS and cpu.sregs.cr0 & CR0_MP:
        raise GuestFault(NM)
    _wait(cpu, cpu.vcpu.get_fpu())


HANDLERS = {"fninit": fninit, "fnclex": fnclex, "fnstsw": fnstsw, "fnstcw": fnstcw, "fldcw": fldcw,
            "fwait": fwait}

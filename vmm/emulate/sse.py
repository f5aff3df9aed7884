"""ldmxcsr and stmxcsr: the SSE control/status register, kept in the vCPU's XSAVE area (MXCSR at byte 24, the
CPU's MXCSR_MASK at byte 28; the FXSAVE layout, Intel SDM vol. 1 10.5.1).

edk2's SEC and PEI (UefiCpuPkg InitializeFloatingPointUnits, run by OVMF right after fninit/fldcw) load MXCSR
with ldmxcsr from their own image, which this host's KVM cannot emulate. Faults as the SDM's LDMXCSR page says:
#UD with CR0.EM set or CR4.OSFXSR clear, #NM with CR0.TS set, #GP(0) for a bit outside MXCSR_MASK.
The new value goes back with KVM_SET_XSAVE with SSE marked in use in XSTATE_BV, so KVM takes MXCSR from the area.
"""

from __future__ import annotations

import ctypes
import struct

from .cpu import CR0_EM, CR0_TS, Cpu
from .decode import Insn
from .faults import GP, NM, UD, GuestFault

CR4_OSFXSR = 1 << 9
MXCSR_AT, XSTATE_BV_AT, XFEATURE_SSE = 24, 512, 1 << 1
DEFAULT_MXCSR_MASK = 0xFFBF          # what the SDM says to assume when the saved MXCSR_MASK is 0


def _check(cpu: Cpu) -> None:
    if cpu.sregs.cr0 & CR0_EM or not cpu.sregs.cr4 & CR4_OSFXSR:
        raise GuestFault(UD)
    if cpu.sregs.cr0 & CR0_TS:
        raise GuestFault(NM)


def ldmxcsr(cpu: Cpu, insn: Insn) -> None:
    _check(cpu)
    value = cpu.value(insn.operands[0], insn)
    area = cpu.vcpu.get_xsave()
    mask = struct.unpack_from("<I", bytes(area.region), MXCSR_AT + 4)[0] or DEFAULT_MXCSR_MASK
    if value & ~mask:
        raise GuestFault(GP, 0)
    ctypes.memmove(ctypes.addressof(area.region) + MXCSR_AT, struct.pack("<I", value), 4)
    area.region[XSTATE_BV_AT] |= XFEATURE_SSE
    cpu.vcpu.set_xsave(area)


def stmxcsr(cpu: Cpu, insn: Insn) -> None:
    _check(cpu)
    area = cpu.vcpu.get_xsave()
    cpu.store(insn.operands[0], insn, struct.unpack_from("<I", bytes(area.region), MXCSR_AT)[0])


HANDLERS = {"ldmxcsr": ldmxcsr, "stmxcsr": stmxcsr}

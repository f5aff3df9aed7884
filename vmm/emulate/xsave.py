"""xgetbv, xsetbv and the XSAVE family: xsave/xsaveopt/xrstor (standard format), xsavec/xsaves/xrstors and
xrstor of a compacted area, through KVM_GET/SET_XCRS and KVM_GET/SET_XSAVE.

KVM's xsave buffer uses the standard layout (legacy region, header at 512, components at the offsets CPUID leaf
0xD gives); components are copied between it and guest memory at those offsets, or at the compacted offsets
(Intel SDM vol. 1 13.4.3). Supervisor components (IA32_XSS) are not in KVM's buffer: an instruction that needs
one is refused (CannotEmulate).
"""

from __future__ import annotations

import ctypes

from kvm.errors import KvmError

from .cpu import CR0_TS, CR4_OSXSAVE, Cpu
from .decode import Insn
from .faults import GP, NM, UD, CannotEmulate, GuestFault

HEADER = 512
IA32_XSS = 0xDA0
X87_RANGES = ((0, 24), (32, 160))          # FCW..FDP, ST0-7 (MXCSR at 24..31 belongs to SSE and AVX)
SSE_RANGES = ((160, 416),)
MXCSR = (24, 32)


def _require_osxsave(cpu: Cpu) -> None:
    if not cpu.sregs.cr4 & CR4_OSXSAVE:
        raise GuestFault(UD)


def _edx_eax(cpu: Cpu) -> int:
    return cpu.reg(2, 4) << 32 | cpu.reg(0, 4)


def xgetbv(cpu: Cpu, insn: Insn) -> None:
    _require_osxsave(cpu)
    index = cpu.reg(1, 4)
    xcr0 = cpu.vcpu.get_xcrs().get(0, 1)
    if index == 0:
        value = xcr0
    elif index == 1 and (e := cpu.cpuid(0xD, 1)) is not None and e.eax & 4:      # XINUSE
        value = _header_bv(_kvm_area(cpu)) & xcr0
    else:
        raise GuestFault(GP, 0)
    cpu.set_reg(0, 4, value & 0xFFFFFFFF)
    cpu.set_reg(2, 4, value >> 32)


def xsetbv(cpu: Cpu, insn: Insn) -> None:
    _require_osxsave(cpu)
    if cpu.cpl or cpu.reg(1, 4) != 0:
        raise GuestFault(GP, 0)
    try:
        cpu.vcpu.set_xcr(0, _edx_eax(cpu))     # KVM checks what XSETBV checks (bit 0, AVX needs SSE, supported)
    except KvmError:
        raise GuestFault(GP, 0) from None


def _kvm_area(cpu: Cpu):
    return cpu.vcpu.get_xsave()


def _header_bv(area) -> int:
    return int.from_bytes(bytes(area.region[HEADER:HEADER + 8]), "little")


def _extended(cpu: Cpu, rfbm: int, compacted: int | None = None) -> list[tuple[int, int, int, int]]:
    """(component, offset in guest memory, offset in KVM's standard-format area, size) of the components from 2
    up in rfbm. compacted: the XCOMP_BV bits when guest memory is in the compacted format (each component in
    bit order after the header, 64-byte aligned where CPUID.(0xD, i).ECX[1] says so)."""
    out = []
    offset = HEADER + 64
    for i in range(2, 63):
        if not (rfbm | (compacted or 0)) >> i & 1:
            continue
        e = cpu.cpuid(0xD, i)
        if e is None or not e.eax or e.ebx < HEADER + 64 or e.ebx + e.eax > 4096:
            raise CannotEmulate(f"XSAVE component {i} is not in KVM's 4 KiB xsave area")
        if compacted is not None and compacted >> i & 1:
            if e.ecx & 2:
                offset = (offset + 63) & ~63
            where, offset = offset, offset + e.eax
        else:
            where = e.ebx
        if rfbm >> i & 1:
            out.append((i, where, e.ebx, e.eax))
    return out


def _pieces(cpu: Cpu, rfbm: int, compacted: int | None) -> list[tuple[int, int, int, int]]:
    """Every byte range of the components in rfbm: (component, guest offset, KVM offset, size); MXCSR counts as
    SSE's (XSAVE stores it for SSE or AVX)."""
    legacy = [(0, start, start, end - start) for start, end in X87_RANGES] if rfbm & 1 else []
    legacy += [(1, start, start, end - start) for start, end in SSE_RANGES] if rfbm & 2 else []
    legacy += [(1, MXCSR[0], MXCSR[0], 8)] if rfbm & 6 else []
    return legacy + _extended(cpu, rfbm, compacted)


def _prologue(cpu: Cpu, insn: Insn, supervisor: bool = False) -> tuple[int, int, int]:
    """(address, RFBM, the feature mask: XCR0, or XCR0 | IA32_XSS for xsaves/xrstors) after the checks every
    XSAVE-family instruction makes."""
    _require_osxsave(cpu)
    if cpu.sregs.cr0 & CR0_TS:
        raise GuestFault(NM)
    if supervisor and cpu.cpl:
        raise GuestFault(GP, 0)
    address = cpu.linear(insn.operands[0], insn)
    if address & 63:
        raise GuestFault(GP, 0)
    mask = cpu.vcpu.get_xcrs().get(0, 1)
    if supervisor:
        mask |= cpu.vcpu.get_msrs([IA32_XSS]).get(IA32_XSS, 0)
    return address, _edx_eax(cpu) & mask, mask


def _save(cpu: Cpu, insn: Insn, compacted: bool, supervisor: bool = False) -> None:
    address, rfbm, _ = _prologue(cpu, insn, supervisor)
    area = _kvm_area(cpu)
    data = bytes(area.region)
    for _, where, start, size in _pieces(cpu, rfbm, rfbm if compacted else None):
        cpu.paging.write(address + where, data[start:start + size])
    in_use = _header_bv(area) & rfbm
    if compacted:
        header = in_use.to_bytes(8, "little") + (rfbm | 1 << 63).to_bytes(8, "little")
    else:
        old = int.from_bytes(cpu.paging.read(address + HEADER, 8), "little")
        header = ((old & ~rfbm) | in_use).to_bytes(8, "little")
    cpu.paging.write(address + HEADER, header)


def xsave(cpu: Cpu, insn: Insn) -> None:
    _save(cpu, insn, compacted=False)


def xsavec(cpu: Cpu, insn: Insn) -> None:
    _save(cpu, insn, compacted=True)


def xsaves(cpu: Cpu, insn: Insn) -> None:
    _save(cpu, insn, compacted=True, supervisor=True)


def _restore(cpu: Cpu, insn: Insn, supervisor: bool = False) -> None:
    address, rfbm, mask = _prologue(cpu, insn, supervisor)
    header = cpu.paging.read(address + HEADER, 64)
    bv = int.from_bytes(header[:8], "little")
    comp = int.from_bytes(header[8:16], "little")
    compacted = comp & ((1 << 63) - 1) if comp >> 63 else None
    if supervisor and compacted is None or any(header[16:]):
        raise GuestFault(GP, 0)
    if compacted is None and (comp or bv & ~mask) or compacted is not None and (compacted & ~mask or bv & ~compacted):
        raise GuestFault(GP, 0)
    area = _kvm_area(cpu)
    region = bytearray(area.region)
    mxcsr_mask = int.from_bytes(region[28:32], "little") or 0xFFBF
    for i, where, start, size in _pieces(cpu, rfbm, compacted):
        if (i, start) != (1, MXCSR[0]):
            region[start:start + size] = cpu.paging.read(address + where, size) if bv >> i & 1 else bytes(size)
    if rfbm & 1 and not bv & 1:
        region[0:2] = b"\x7f\x03"                # x87 init state: FCW 0x37F, all else zero
    if rfbm & 6:
        from_memory = compacted is None or bv & 6      # the compacted form initializes it with SSE and AVX
        mxcsr = int.from_bytes(cpu.paging.read(address + MXCSR[0], 4), "little") if from_memory else 0x1F80
        if mxcsr & ~mxcsr_mask:
            raise GuestFault(GP, 0)
        region[24:28] = mxcsr.to_bytes(4, "little")
    region[HEADER:HEADER + 8] = ((_header_bv(area) & ~rfbm) | (bv & rfbm)).to_bytes(8, "little")
    ctypes.memmove(area.region, bytes(region), len(region))
    try:
        cpu.vcpu.set_xsave(area)
    except KvmError:
        raise GuestFault(GP, 0) from None


def xrstor(cpu: Cpu, insn: Insn) -> None:
    _restore(cpu, insn)


def xrstors(cpu: Cpu, insn: Insn) -> None:
    _restore(cpu, insn, supervisor=True)


HANDLERS = {"xgetbv": xgetbv, "xsetbv": xsetbv, "xsave": xsave, "xsave64": xsave, "xsaveopt": xsave,
            "xsaveopt64": xsave, "xrstor": xrstor, "xrstor64": xrstor, "xsavec": xsavec, "xsavec64": xsavec,
            "xsaves": xsaves, "xsaves64": xsaves, "xrstors": xrstors, "xrstors64": xrstors}

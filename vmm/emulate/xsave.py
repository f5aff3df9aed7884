"""xgetbv, xsetbv, xsave/xsaveopt and xrstor (standard format) through KVM_GET/SET_XCRS and KVM_GET/SET_XSAVE.

KVM's xsave buffer uses the standard layout (legacy region, header at 512, components at the offsets CPUID leaf
0xD gives), so components are copied between it and guest memory at the same offsets (Intel SDM vol. 1 ch. 13).
"""

from __future__ import annotations

import ctypes

from kvm.errors import KvmError

from .cpu import CR0_TS, CR4_OSXSAVE, Cpu
from .decode import Insn
from .faults import GP, NM, UD, CannotEmulate, GuestFault

HEADER = 512
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


def _extended(cpu: Cpu, rfbm: int) -> list[tuple[int, int, int]]:
    """(component, start, end) of the components from 2 up in rfbm, at their standard-format offsets."""
    out = []
    for i in range(2, 63):
        if rfbm >> i & 1:
            e = cpu.cpuid(0xD, i)
            if e is None or not e.eax or e.ebx + e.eax > 4096:
                raise CannotEmulate(f"XSAVE component {i} is not in KVM's 4 KiB xsave area")
            out.append((i, e.ebx, e.ebx + e.eax))
    return out


def _component_ranges(cpu: Cpu, rfbm: int) -> list[tuple[int, int]]:
    """Byte ranges of the XSAVE area that the components in rfbm occupy."""
    ranges: list[tuple[int, int]] = []
    if rfbm & 1:
        ranges += X87_RANGES
    if rfbm & 2:
        ranges += SSE_RANGES
    if rfbm & 6:
        ranges.append(MXCSR)
    return ranges + [(start, end) for _, start, end in _extended(cpu, rfbm)]


def _prologue(cpu: Cpu, insn: Insn) -> tuple[int, int, int]:
    """(address, RFBM, XCR0) after the checks every XSAVE-family instruction makes."""
    _require_osxsave(cpu)
    if cpu.sregs.cr0 & CR0_TS:
        raise GuestFault(NM)
    address = cpu.linear(insn.operands[0], insn)
    if address & 63:
        raise GuestFault(GP, 0)
    xcr0 = cpu.vcpu.get_xcrs().get(0, 1)
    return address, _edx_eax(cpu) & xcr0, xcr0


def xsave(cpu: Cpu, insn: Insn) -> None:
    address, rfbm, _ = _prologue(cpu, insn)
    area = _kvm_area(cpu)
    data = bytes(area.region)
    for start, end in _component_ranges(cpu, rfbm):
        cpu.paging.write(address + start, data[start:end])
    old = int.from_bytes(cpu.paging.read(address + HEADER, 8), "little")
    bv = (old & ~rfbm) | (_header_bv(area) & rfbm)
    cpu.paging.write(address + HEADER, bv.to_bytes(8, "little"))


def xrstor(cpu: Cpu, insn: Insn) -> None:
    address, rfbm, xcr0 = _prologue(cpu, insn)
    header = cpu.paging.read(address + HEADER, 64)
    bv = int.from_bytes(header[:8], "little")
    comp = int.from_bytes(header[8:16], "little")
    if comp >> 63:
        raise CannotEmulate("xrstor of a compacted-format area")
    if comp or any(header[16:]) or bv & ~xcr0:
        raise GuestFault(GP, 0)
    area = _kvm_area(cpu)
    region = bytearray(area.region)
    mask = int.from_bytes(region[28:32], "little") or 0xFFBF
    parts = [(0, start, end) for start, end in X87_RANGES] + [(1, start, end) for start, end in SSE_RANGES]
    for i, start, end in parts + _extended(cpu, rfbm):
        if rfbm >> i & 1:
            region[start:end] = cpu.paging.read(address + start, end - start) if bv >> i & 1 else bytes(end - start)
    if rfbm & 1 and not bv & 1:
        region[0:2] = b"\x7f\x03"                # x87 init state: FCW 0x37F, all else zero
    if rfbm & 6:
        mxcsr = int.from_bytes(cpu.paging.read(address + 24, 4), "little")
        if mxcsr & ~mask:
            raise GuestFault(GP, 0)
        region[24:28] = mxcsr.to_bytes(4, "little")
    region[HEADER:HEADER + 8] = ((_header_bv(area) & ~rfbm) | (bv & rfbm)).to_bytes(8, "little")
    ctypes.memmove(area.region, bytes(region), len(region))
    try:
        cpu.vcpu.set_xsave(area)
    except KvmError:
        raise GuestFault(GP, 0) from None


HANDLERS = {"xgetbv": xgetbv, "xsetbv": xsetbv, "xsave": xsave, "xsave64": xsave, "xsaveopt": xsave,
            "xsaveopt64": xsave, "xrstor": xrstor, "xrstor64": xrstor}

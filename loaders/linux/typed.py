"""`--igvm type=linux` and `--kernel`: what the VMM adds to a Linux direct-boot IGVM once its parameters are filled
(OpenVMM vm/loader/src/linux.rs, with its mistakes fixed): the e820 table in the zero page, boot data reserved in
it, and RSDP/XSDT/FADT/DSDT after the boot data, the MADT/SRAT/SLIT/PPTT parameter areas listed by address."""

from __future__ import annotations

from ..acpi import build_dsdt, build_fadt, build_rsdp, build_xsdt
from ..errors import LoadError
from ..igvm.parameters import HostInfo
from ..mptable import build_mp_table, mp_table_size
from ..pc import PcHardware
from ..plan import LoadPlan, MemoryWrite
from .bootparams import (E820_MAX, E820_RAM, E820_RESERVED, ZERO_PAGE_SIZE, BootParams, E820Entry,
                         is_bzimage)

TABLE_ORDER = ("MADT", "SRAT", "SLIT", "PPTT")


def _align(v: int, a: int = 4096) -> int:
    return (v + a - 1) // a * a


def e820_map(ram: list[tuple[int, int]], reserved: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(addr, size, type): RAM ranges with the reserved (start, end) ranges carved out and listed as type 2."""
    cuts = sorted(reserved)
    out: list[tuple[int, int, int]] = []
    for gpa, size in sorted(ram):
        pos, end = gpa, gpa + size
        for r0, r1 in cuts:
            if r1 <= pos or r0 >= end:
                continue
            if r0 > pos:
                out.append((pos, r0 - pos, E820_RAM))
            out.append((max(r0, pos), min(r1, end) - max(r0, pos), E820_RESERVED))
            pos = min(r1, end)
        if pos < end:
            out.append((pos, end - pos, E820_RAM))
    return out


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def apply_linux(plan: LoadPlan, host: HostInfo, hw: PcHardware) -> None:
    """Patch the zero page RSI points at and add the ACPI tables; LoadError if the file is not laid out for it.

    A pure loader step: the machine's facts come in (host: RAM and vCPUs; hw: where its devices are), plan
    writes go out."""
    vp = plan.vps[0]
    zp_gpa = vp.regs.get("rsi", 0)
    index = next((i for i, w in enumerate(plan.writes) if w.gpa <= zp_gpa and zp_gpa + 4096 <= w.end), None)
    if not zp_gpa or index is None:
        raise LoadError(f"type=linux: RSI ({zp_gpa:#x}) does not point at a zero page the file loads")
    old = plan.writes[index]
    data = bytearray(old.data)
    zp = zp_gpa - old.gpa
    if not is_bzimage(memoryview(data)[zp:zp + ZERO_PAGE_SIZE]):
        raise LoadError(f"type=linux: the page at RSI ({zp_gpa:#x}) has no 'HdrS' setup header")
    # ACPI tables go right after the boot data below 1 MiB; the boot data and tables are reserved in e820.
    low = [(a, b) for a, b, _ in plan.ranges() if a < 0x100000]
    boot_end = _align(max((b for _, b in low), default=0x1000))
    rsdp_gpa, tables_gpa = boot_end, boot_end + 4096
    by_usage = {u: p.gpa + off for p in plan.parameters if p.gpa is not None for u, off in p.usages}
    dsdt = build_dsdt(hw)
    fadt_gpa = tables_gpa + _align(len(dsdt), 8)
    fadt = build_fadt(tables_gpa, hw)
    blobs = [dsdt, bytes(-len(dsdt) % 8), fadt, bytes(-len(fadt) % 8)]
    listed = [fadt_gpa]
    pos = fadt_gpa + len(fadt) + (-len(fadt) % 8)
    for name in TABLE_ORDER:
        if name in by_usage:
            listed.append(by_usage[name])
        else:
            table = getattr(host, name.lower())
            listed.append(pos)
            blobs += [table, bytes(-len(table) % 8)]
            pos += _align(len(table), 8)
    xsdt_gpa = pos                           # the XSDT follows the last table
    blobs.append(build_xsdt(listed))
    tables = b"".join(blobs)
    acpi_end = _align(tables_gpa + len(tables))
    if acpi_end > hw.low_reserved[0]:
        raise LoadError(f"type=linux: no room for the ACPI tables below {hw.low_reserved[0]:#x} (boot data ends at "
                        f"{boot_end:#x})")
    reserved = _merge([(a & ~0xFFF, _align(b)) for a, b in low if a >= 0x1000]
                      + [(rsdp_gpa, acpi_end), hw.low_reserved])
    e820 = e820_map(host.ram, reserved)
    if len(e820) > E820_MAX:
        raise LoadError(f"type=linux: {len(e820)} e820 entries, the zero page holds {E820_MAX}")
    bp = BootParams.from_buffer(data, zp)
    bp.e820_entries = len(e820)
    for i, entry in enumerate(e820):
        bp.e820_table[i] = E820Entry(*entry)
    bp.acpi_rsdp_addr = rsdp_gpa
    del bp                                   # release data's buffer
    plan.writes[index] = MemoryWrite(old.gpa, bytes(data), old.what + " + e820/RSDP (type=linux)")
    plan.writes.append(MemoryWrite(rsdp_gpa, build_rsdp(xsdt_gpa), "ACPI RSDP (type=linux)"))
    plan.writes.append(MemoryWrite(tables_gpa, tables, "ACPI DSDT/FADT/XSDT (type=linux)"))
    mp_gpa = hw.mp_table_gpa
    mp_end = mp_gpa + mp_table_size(host.cpus)
    if not any(a < mp_end and mp_gpa < b for a, b, _ in plan.ranges()):   # the file's own data wins
        plan.writes.append(MemoryWrite(mp_gpa, build_mp_table(host.cpus, hw), "MP table (type=linux)"))
    try:
        plan.check(host.ram)
    except LoadError as e:
        raise LoadError(f"type=linux: {e}") from None

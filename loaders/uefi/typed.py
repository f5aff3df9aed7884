"""`--igvm type=uefi`: what OpenVMM's typed UEFI launch adds to an IGVM load (OpenVMM PR #3726).

Two generations of UEFI IGVM: a file that puts the IGVM parameter block at 0x709000 gets its parameters filled
and nothing else; any other file gets the legacy config blob written there after loading. Either way R12 holds
0x709000 unless the file's VP context sets R12 itself. (R12 is the typed launch this project implements; the
final revision of OpenVMM's typed launch, PR #3726, dropped it: there the firmware finds the blob at its fixed
address, and OpenVMM's loader sets R12 only for the SNP parameter-block form, vm/loader/src/uefi/mod.rs.)
"""

from __future__ import annotations

import os

from ..errors import LoadError
from ..igvm.constants import Platform
from ..igvm.parameters import HostInfo
from ..plan import LoadPlan, MemoryWrite
from ..x86 import MSR_MTRR_DEF_TYPE
from .blob import UefiMachine, build_config_blob, mtrrs_initialized_at_load, volatile_ranges
from .layout import CONFIG_BLOB_GPA_BASE


def uefi_machine(host: HostInfo, mmio: tuple[tuple[int, int], ...], mtrrs_initialized: bool,
                 entropy: bytes | None = None, bios_guid: bytes | None = None) -> UefiMachine:
    """The blob's view of the machine: RAM, vCPUs, ACPI tables in OpenVMM's order, COM1 console.

    mmio is the machine's two MMIO gaps as the blob lists them ((gpa, size), (gpa, size)); the VMM knows them.
    """
    tables = [t for t in (host.madt, host.srat, host.slit, host.pptt) if t]
    return UefiMachine(cpus=host.cpus, ram=list(host.ram), entropy=entropy or os.urandom(64),
                       bios_guid=bios_guid or os.urandom(16), acpi_tables=tables,
                       mmio=mmio,
                       mtrrs_initialized=mtrrs_initialized)


def has_parameter_block(plan: LoadPlan) -> bool:
    """True when the file itself places something on the page at 0x709000 (the IGVM parameter-block form)."""
    page = CONFIG_BLOB_GPA_BASE
    return any(start < page + 4096 and end > page for start, end, _ in plan.ranges())


def r12_set_by_file(plan: LoadPlan, platform_type: Platform) -> bool:
    regs = plan.vps[0].regs
    if platform_type == Platform.NATIVE:
        return regs.get("r12", 0) != 0      # the native context always has an R12 field; zero means unset
    return "r12" in regs                    # a VBS list sets only the registers it lists


def apply_uefi(plan: LoadPlan, platform_type: Platform, host: HostInfo, mmio: tuple[tuple[int, int], ...]) -> str:
    """Add the blob (when needed) and R12 to a filled plan; returns 'parameter block' or 'config blob'.

    A pure loader step: the machine's facts come in (host, the blob's MMIO gaps), plan writes and R12 go out.
    """
    form = "parameter block"
    if not has_parameter_block(plan):
        form = "config blob"
        machine = uefi_machine(host, mmio, mtrrs_initialized_at_load(plan.vps[0].msrs.get(MSR_MTRR_DEF_TYPE)))
        blob = build_config_blob(machine)
        padded = blob + bytes(-len(blob) % 4096)
        masked = bytearray(padded)
        for off, n in volatile_ranges(blob):
            masked[off:off + n] = bytes(n)
        plan.writes.append(MemoryWrite(CONFIG_BLOB_GPA_BASE, padded, "UEFI config blob (type=uefi)",
                                       digest_data=bytes(masked)))
        plan.notes.append("the UEFI config blob's entropy and BIOS GUID are random per launch; its hash masks them")
    if not r12_set_by_file(plan, platform_type):
        plan.vps[0].regs["r12"] = CONFIG_BLOB_GPA_BASE
    else:
        plan.notes.append(f"R12 = {plan.vps[0].regs['r12']:#x} comes from the file's VP context")
    try:
        plan.check(host.ram)
    except LoadError as e:
        raise LoadError(f"type=uefi: {e}") from None
    return form

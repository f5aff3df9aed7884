"""What the machine offers a guest, as plain data for the loaders: RAM layout, vCPUs, command line, ACPI tables."""

from __future__ import annotations

from loaders.acpi import build_madt, build_pptt, build_slit, build_srat
from loaders.igvm.parameters import HostInfo

from .memory import GiB, MMIO_HOLE_END, MMIO_HOLE_START, ram_layout
from .pc_layout import PC


def host_info(memory: int, cpus: int, cmdline: str | None = None) -> HostInfo:
    """HostInfo for a machine with `memory` bytes of RAM (split around the 3-4 GiB hole) and `cpus` vCPUs."""
    ram = ram_layout(memory)
    top = max(MMIO_HOLE_END, max(g + s for g, s in ram))
    high = (top + GiB - 1) // GiB * GiB
    return HostInfo(cpus=cpus, ram=ram, cmdline=cmdline, madt=build_madt(cpus, PC), srat=build_srat(cpus, ram),
                    slit=build_slit(1), pptt=build_pptt(cpus),
                    mmio=[(MMIO_HOLE_START, PC.low_mmio_end - MMIO_HOLE_START), (high, PC.high_mmio_size)])

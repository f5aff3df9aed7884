"""An Intel MultiProcessor Specification 1.4 table describing the same machine as the MADT.

Linux looks for an MP floating pointer before it reads ACPI, scanning the first KiB, the last KiB below
640 KiB and the 64 KiB BIOS area, and on the kernels we boot it re-maps its window for every 16 bytes it
tries: where no table is found that scan alone costs seconds on an emulating KVM. So, like QEMU's
firmware, Firecracker and kvmtool, the VMM puts one in the last KiB below 640 KiB where the second scan finds
it at once; it also serves kernels booted with acpi=off. The entries mirror loaders/acpi's MADT: one IOAPIC
(ID 0, the in-kernel one), the PIT's IRQ on its pin, the SCI level-triggered, LINT0 ExtINT, LINT1 NMI; the
addresses and IRQs come in as a PcHardware value.
"""

from __future__ import annotations

import struct

from .pc import PcHardware

LAPIC_VERSION, IOAPIC_VERSION = 0x14, 0x11
CPU_SIGNATURE, CPU_FEATURES = 0x600, 0x201       # family 6; FPU and APIC present
IOAPIC_ID = 0
INT, EXTINT, NMI = 0, 3, 1
ACTIVE_HIGH_LEVEL = 0x0D                           # polarity 01 (high), trigger 11 (level)


def _fix_checksum(data: bytearray, at: int, start: int = 0, end: int | None = None) -> None:
    data[at] = 0
    data[at] = -sum(data[start:end]) & 0xFF


def mp_table_size(cpus: int) -> int:
    """Bytes build_mp_table writes for this many vCPUs (floating pointer included)."""
    return 16 + 44 + 20 * cpus + 8 + 8 + 8 * 15 + 8 * 2


def build_mp_table(cpus: int, hw: PcHardware, gpa: int | None = None) -> bytes:
    """Floating pointer at gpa (default: the machine's MP table address), the configuration table right after it."""
    gpa = hw.mp_table_gpa if gpa is None else gpa
    if not 1 <= cpus <= 255:
        raise ValueError(f"processor count {cpus} is outside 1..255")
    entries = []
    for i in range(cpus):
        flags = 1 | (2 if i == 0 else 0)          # enabled; the BSP
        entries.append(struct.pack("<BBBBII8x", 0, i, LAPIC_VERSION, flags, CPU_SIGNATURE, CPU_FEATURES))
    entries.append(struct.pack("<BB6s", 1, 0, b"ISA   "))
    entries.append(struct.pack("<BBBBI", 2, IOAPIC_ID, IOAPIC_VERSION, 1, hw.ioapic_addr))
    for irq in range(16):
        if irq == 2:
            continue                                # the PIC cascade: no ISA device behind it
        pin = hw.pit_gsi if irq == hw.pit_irq else irq
        flags = ACTIVE_HIGH_LEVEL if irq == hw.sci_irq else 0
        entries.append(struct.pack("<BBHBBBB", 3, INT, flags, 0, irq, IOAPIC_ID, pin))
    entries.append(struct.pack("<BBHBBBB", 4, EXTINT, 0, 0, 0, 0xFF, 0))
    entries.append(struct.pack("<BBHBBBB", 4, NMI, 0, 0, 0, 0xFF, 1))
    body = b"".join(entries)
    table = bytearray(struct.pack("<4sHBB8s12sIHHIHBB", b"PCMP", 44 + len(body), 4, 0, b"PYVMM   ", b"PYVMM MP    ",
                                  0, 0, len(entries), hw.lapic_addr, 0, 0, 0)) + body
    _fix_checksum(table, 7)
    floating = bytearray(struct.pack("<4sIBBB5x", b"_MP_", gpa + 16, 1, 4, 0))
    _fix_checksum(floating, 10)
    out = bytes(floating + table)
    assert len(out) == mp_table_size(cpus)
    return out

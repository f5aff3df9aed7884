"""The PIIX4 power-management function at 00:01.3 (8086:7113): where the ACPI PM registers appear in I/O space.

As QEMU's hw/acpi/piix4.c: PMBA (config 0x40) resets to 0x00000001 (bit 0: I/O space indicator) with bits 15:6
writable; the 64-byte block appears at PMBA & 0xFFC0 while PMREGMISC (0x80) bit 0 (PMIOSE) is set. edk2's
AcpiTimerLib (OvmfPkg/Library/AcpiTimerLib/BaseRomAcpiTimerLib.c) programs PMBA and sets PMIOSE unless PMIOSE
is already set, then reads the timer at PMBA + 8. The registers themselves are chipset/acpi_pm.py's.

`map_io(base)` is told where the block is now (None: not decoded); the machine moves the PM device on its bus.
A VMM that boots a kernel directly plays the firmware's part and builds the function already enabled.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .i440fx import QEMU_SUBSYSTEM, VENDOR_INTEL
from .pci import PciFunction

DEVICE_PIIX4_PM = 0x7113
PMBA, PMBA_RTE, PMBA_MASK = 0x40, 0x01, 0xFFC0
PMREGMISC, PMIOSE = 0x80, 0x01
PM_BLOCK = 0x40                 # bytes the PMBA decodes


class Piix4Pm(PciFunction):
    def __init__(self, map_io: Callable[[int | None], None], enabled_at: int | None = None) -> None:
        """enabled_at: a PM base to start with, decoded (what firmware leaves); None: QEMU's reset state."""
        super().__init__(VENDOR_INTEL, DEVICE_PIIX4_PM, revision=0x03, class_code=0x068000, status=0x0280,
                         pin=1, subsystem=QEMU_SUBSYSTEM)
        self.map_io = map_io
        self.writable(PMBA, 4, PMBA_MASK)
        self.writable(PMREGMISC, 1, PMIOSE)
        struct.pack_into("<I", self.config, PMBA, PMBA_RTE | ((enabled_at or 0) & PMBA_MASK))
        if enabled_at is not None:
            self.config[PMREGMISC] = PMIOSE
        self.mapped: int | None = None
        self._update()

    def base(self) -> int | None:
        """Where the PM block decodes now, or None."""
        if not self.config[PMREGMISC] & PMIOSE:
            return None
        return struct.unpack_from("<I", self.config, PMBA)[0] & PMBA_MASK

    def written(self, offset: int, size: int) -> None:
        if offset < PMBA + 4 and PMBA < offset + size or offset <= PMREGMISC < offset + size:
            self._update()

    def _update(self) -> None:
        base = self.base()
        if base != self.mapped:
            self.mapped = base
            self.map_io(base)

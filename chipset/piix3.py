"""The PIIX3 PCI-to-ISA bridge at 00:01.0 (8086:7000), function 0 of the southbridge, as QEMU's hw/isa/piix.c.

OVMF puts COM1 and the PS/2 keyboard on its consoles only when PCI enumeration finds this class 06/01/00
bridge, and its SioBusDxe binds to it only if the command register keeps I/O and memory enable (bits 0-1)
once written (edk2 OvmfPkg/SioBusDxe/SioBusDxe.c). The header's multifunction bit makes enumeration look at
function 3 (the PM function). PIRQ route control 0x60-0x63 resets to 0x80 (disabled) and keeps what is written
(OVMF's PciAcpiInitialization routes PIRQA-D to IRQ 10, 10, 11, 11); routing is not applied: pyvmm has no PCI
device that raises INTx.
"""

from __future__ import annotations

from .i440fx import QEMU_SUBSYSTEM, VENDOR_INTEL
from .pci import MULTIFUNCTION, PciFunction

DEVICE_PIIX3_ISA = 0x7000
PIRQRC, PIRQ_COUNT, PIRQ_DISABLED = 0x60, 4, 0x80


class Piix3Isa(PciFunction):
    def __init__(self) -> None:
        super().__init__(VENDOR_INTEL, DEVICE_PIIX3_ISA, revision=0x00, class_code=0x060100,
                         header_type=MULTIFUNCTION, status=0x0200, command=0x0007, subsystem=QEMU_SUBSYSTEM)
        self.config[PIRQRC:PIRQRC + PIRQ_COUNT] = bytes([PIRQ_DISABLED]) * PIRQ_COUNT
        self.writable(PIRQRC, PIRQ_COUNT)

    def pirq_routes(self) -> list[int | None]:
        """The ISA IRQ each of PIRQA-D is routed to, None where disabled (bit 7)."""
        return [None if r & PIRQ_DISABLED else r & 0x0F for r in self.config[PIRQRC:PIRQRC + PIRQ_COUNT]]

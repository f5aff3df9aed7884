"""The i440FX host bridge at 00:00.0 (8086:1237): what edk2's OVMF reads to pick its "pc" code paths.

IDs and reset values as QEMU's hw/pci-host/i440fx.c: revision 2, class 06/00/00 (host bridge), no BARs, interrupt
pin 0. The PAM registers (0x59-0x5F) and SMRAM (0x72) keep what is written; pyvmm maps nothing through them (the
low BIOS area is a fixed alias, see vmm/firmware.py), which OVMF, having no CSM, never needs.
"""

from __future__ import annotations

from .pci import PciFunction

VENDOR_INTEL = 0x8086
DEVICE_I440FX = 0x1237
QEMU_SUBSYSTEM = (0x1AF4, 0x1100)
PAM0, PAM_COUNT = 0x59, 7
SMRAM, SMRAM_RESET = 0x72, 0x02


class I440fxHost(PciFunction):
    def __init__(self) -> None:
        super().__init__(VENDOR_INTEL, DEVICE_I440FX, revision=0x02, class_code=0x060000,
                         subsystem=QEMU_SUBSYSTEM)
        self.writable(PAM0, PAM_COUNT)
        self.config[SMRAM] = SMRAM_RESET
        self.writable(SMRAM, 1, 0x78)          # D_OPEN/D_CLS/D_LCK/G_SMRAME; C_BASE_SEG reads 010

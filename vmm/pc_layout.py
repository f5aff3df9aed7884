"""The PC this VMM builds, every port, IRQ and reserved address in one place.

The devices get these values as constructor arguments and bus registrations (vmm/machine.py), the ACPI and
MP-table builders and the typed Linux launch get the PcHardware value as a parameter, so what the guest is
told and what it finds agree by construction. The values are those of QEMU's pc machine with the in-kernel
irqchip (hw/i386/pc.c, hw/i386/acpi-build.c, hw/nvram/fw_cfg.c) and of KVM's documented defaults.
"""

from __future__ import annotations

from chipset.acpi_pm import PM_LENGTH
from chipset.fw_cfg import FW_CFG_PORTS
from chipset.i8042 import I8042_PORTS
from loaders.pc import PcHardware

PC = PcHardware(
    lapic_addr=0xFEE00000,
    ioapic_addr=0xFEC00000,
    ioapic_pins=24,
    pit_irq=0,
    pit_gsi=2,
    sci_irq=9,
    pm_base=0xB000,                          # where edk2's OVMF programs the PIIX4 PMBA (OvmfPlatforms.h)
    pm_length=PM_LENGTH,
    s5_slp_typ=0,                            # QEMU's DSDT and edk2's ResetShutdown (DxeResetShutdown.c)
    pci_conf_port=0xCF8,
    pci_data_port=0xCFC,
    piix_device=1,
    piix_pm_function=3,
    cmos_port=0x70,
    debugcon_port=0x402,
    low_rom_alias=(0xE0000, 0x20000),        # QEMU's isa-bios (hw/i386/x86-common.c x86_isa_bios_init)
    reset_port=0xCF9,
    reset_value=0x06,
    fw_cfg_port=0x510,
    fw_cfg_ports=FW_CFG_PORTS,
    com1_port=0x3F8,
    com1_irq=4,
    i8042_port=0x60,
    i8042_ports=I8042_PORTS,
    i8042_irq=1,
    debug_exit_port=0xF4,
    post_port=0x80,
    a20_port=0x92,
    mp_table_gpa=0x9FC00,
    low_reserved=(0x9FC00, 0x100000),
    identity_map_addr=0xFEFFC000,            # one page, then the TSS: QEMU's (target/i386/kvm/kvm.c), just below
    tss_addr=0xFEFFD000,                     # the lowest address a 16 MiB firmware image ending at 4 GiB takes
    kvm_reserved=(0xFEFFC000, 0x4000),
    low_mmio_end=0xFEC00000,
    high_mmio_size=64 << 30,                 # 64 GiB
)

"""The PC hardware the tables a loader builds describe (ACPI MADT/DSDT/FADT, the MP table, the zero page's
reserved ranges): the field names only. The values are the machine's and are set once, in vmm/pc_layout.py;
loaders receive them as a parameter, so no loader keeps its own copy of a port, IRQ or address.
"""

from __future__ import annotations

from .record import record


@record(frozen=True)
class PcHardware:
    """Where a PC's devices are: what the devices are registered at and what the guest's tables say."""
    lapic_addr: int              # local APIC MMIO base
    ioapic_addr: int             # the in-kernel IOAPIC's MMIO base (IOAPIC ID 0, GSI base 0)
    ioapic_pins: int             # its redirection entries
    pit_irq: int                 # the PIT's ISA IRQ ...
    pit_gsi: int                 # ... and the IOAPIC pin it is routed to (the MADT's and MP table's override)
    sci_irq: int                 # ACPI SCI: ISA IRQ = GSI, level-triggered, active high
    pm_base: int                 # ACPI PM1a event block; PM1a control at +4, PM timer at +8, GPE0 at +12
    pm_length: int               # ports the PM block covers
    s5_slp_typ: int              # the DSDT's \\_S5 sleep type: PM1a control SLP_EN with it powers off
    pci_conf_port: int           # PCI configuration mechanism #1 address register (data at pci_data_port)
    pci_data_port: int
    piix_device: int             # PCI device number of the PIIX3/PIIX4 southbridge on bus 0 (ISA bridge: function 0)
    piix_pm_function: int        # its ACPI power-management function
    cmos_port: int               # MC146818 RTC/CMOS index port (data +1)
    debugcon_port: int           # QEMU's isa-debugcon (Bochs port e9 hack), where edk2's OVMF looks for it
    low_rom_alias: tuple[int, int]   # (gpa, size): the top of a firmware image seen again below 1 MiB (isa-bios)
    reset_port: int              # FADT RESET_REG (the PC's reset control register)
    reset_value: int             # FADT RESET_VALUE
    fw_cfg_port: int             # QEMU fw_cfg selector port (data +1, DMA +4)
    fw_cfg_ports: int            # ports fw_cfg decodes (the DSDT's _CRS length)
    com1_port: int
    com1_irq: int
    i8042_port: int              # data port; status/command at +4
    i8042_ports: int
    i8042_irq: int               # keyboard IRQ
    debug_exit_port: int         # QEMU's isa-debug-exit
    post_port: int               # POST codes / io delay
    a20_port: int                # system control port A (fast A20, fast reset)
    mp_table_gpa: int            # the MP floating pointer (the last KiB below 640 KiB)
    low_reserved: tuple[int, int]   # (start, end): EBDA, VGA hole and BIOS area, never RAM for a guest
    identity_map_addr: int       # KVM's identity-map page (KVM_SET_IDENTITY_MAP_ADDR)
    tss_addr: int                # KVM's three TSS pages (KVM_SET_TSS_ADDR)
    kvm_reserved: tuple[int, int]   # (gpa, size): both of the above, reserved in the e820 map
    low_mmio_end: int            # top of the MMIO range below 4 GiB offered to a guest (IOAPIC, LAPIC above)
    high_mmio_size: int          # bytes of MMIO range offered above RAM

"""What pyvmm's fw_cfg serves, as QEMU's pc machine fills it (QEMU hw/i386/fw_cfg.c, hw/i386/pc.c, hw/nvram/fw_cfg.c):
the fixed keys, etc/e820, bootorder, etc/boot-fail-wait, ACPI through the table loader, the direct-boot kernel items
for --kernel, and the user's --fw-cfg files."""

from __future__ import annotations

import struct

from chipset.fw_cfg import FwCfgFile, FwCfgItems, Key, directory
from chipset.vmfwupdate import FILE_NAME as VMFWUPDATE_FILE
from loaders.acpi import build_madt
from loaders.acpi.table_loader import build_qemu_acpi
from loaders.errors import LoadError
from loaders.linux.bootparams import (CAN_USE_HEAP, E820_RAM, E820_RESERVED, SETUP_HEADER,
                                      XLF_CAN_BE_LOADED_ABOVE_4G, SetupHeader, e820_bytes, is_bzimage)

from .memory import MMIO_HOLE_START, ram_layout
from .pc_layout import PC

HPET_CONFIG_SIZE = 1 + 8 * 15         # struct hpet_fw_config: count, 8 x {u32 id, u64 address, u16 tick, u8 prot}
BOOT_FAIL_WAIT = 0xFFFFFFFF           # -1: no reboot timeout
ACPI_DATA_SIZE = 0x20000 + 0x8000     # what QEMU's pc keeps free below the top of low RAM for ACPI
QEMU_LOADER_ID = 0xB0
REAL_ADDR, CMDLINE_ADDR, PROT_ADDR = 0x10000, 0x20000, 0x100000   # where QEMU's linuxboot option ROM puts them
SETUP_DATA_MAX = 8192                 # the patched part of the setup sectors (QEMU copies at most this much)


def _u16(v: int) -> bytes:
    return struct.pack("<H", v)


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def e820_table(memory: int) -> bytes:
    """etc/e820: the RAM ranges (type 1) and KVM's identity-map and TSS pages (type 2; QEMU reserves its own the
    same way), packed 20-byte {addr, size, type} entries."""
    entries = [(gpa, size, E820_RAM) for gpa, size in ram_layout(memory)] + [(*PC.kvm_reserved, E820_RESERVED)]
    return e820_bytes(entries)


def fw_cfg_items(memory: int, cpus: int, files: tuple[FwCfgFile, ...] = (),
                 kernel_keys: dict[int, bytes | memoryview] | None = None,
                 kernel_files: tuple[FwCfgFile, ...] = (), vmfwupdate: bool = True) -> FwCfgItems:
    """The whole item set for a machine; ValueError for duplicate file names or too many files.

    With vmfwupdate a slot is kept for etc/vmfwupdate, which each machine adds with its own device model."""
    keys: dict[int, bytes | memoryview] = {
        Key.UUID: bytes(16),
        Key.RAM_SIZE: struct.pack("<Q", memory),
        Key.NOGRAPHIC: _u16(1),
        Key.NB_CPUS: _u16(cpus),
        Key.MAX_CPUS: _u16(cpus),
        Key.BOOT_MENU: _u16(0),
        Key.NUMA: bytes(8 * (1 + cpus)),          # no nodes: count 0, then one node id per APIC id
        Key.IRQ0_OVERRIDE: _u32(1),
        Key.HPET: bytes(HPET_CONFIG_SIZE),
    }
    keys.update(kernel_keys or {})
    acpi = build_qemu_acpi(build_madt(cpus, PC), PC)
    base = [FwCfgFile("etc/boot-fail-wait", _u32(BOOT_FAIL_WAIT)), FwCfgFile("etc/e820", e820_table(memory)),
            FwCfgFile("bootorder", b"")] + [FwCfgFile(name, data) for name, data in acpi.items()]
    items = FwCfgItems(keys, base + list(kernel_files) + list(files))
    reserved = [FwCfgFile(VMFWUPDATE_FILE, bytes(32))] if vmfwupdate else []
    directory(items.files + reserved)             # duplicates / slots checked now, not when a machine starts
    return items


# --- direct kernel boot (QEMU's x86_load_linux) ---------------------------------------------------------------
def linux_boot_items(kernel: bytes, initrd: bytes | None, cmdline: str,
                     memory: int) -> tuple[dict[int, bytes | memoryview], tuple[FwCfgFile, ...]]:
    """The kernel/setup/initrd/cmdline keys and etc/boot/kernel as QEMU fills them for -kernel/-initrd/-append.

    A bzImage gets the patched setup sectors and the protected-mode part; an ELF vmlinux the PVH form
    (entry from its note, lowest load address, the whole file). LoadError when the initrd cannot fit."""
    from loaders.linux.kernel import parse_kernel, setup_size
    parsed = parse_kernel(kernel)
    cmd = cmdline.encode()
    below_4g = min(memory, MMIO_HOLE_START)
    keys: dict[int, bytes | memoryview] = {Key.CMDLINE_SIZE: _u32(len(cmd) + 1), Key.CMDLINE_DATA: cmd + b"\0"}
    whole = memoryview(kernel)
    bzimage = is_bzimage(kernel)               # parse_kernel has checked the header is whole
    initrd_max = below_4g - ACPI_DATA_SIZE - 1
    if bzimage:
        header = bytearray(kernel[:SETUP_DATA_MAX])
        hdr = SetupHeader.from_buffer(header, SETUP_HEADER)
        protocol = hdr.version
        if protocol >= 0x20C and hdr.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G:
            limit = 0xFFFFFFFF
        else:
            limit = hdr.initrd_addr_max if protocol >= 0x203 else 0x37FFFFFF
        initrd_max = min(limit, initrd_max)
        keys[Key.CMDLINE_ADDR] = _u32(CMDLINE_ADDR)
        hdr.cmd_line_ptr = CMDLINE_ADDR
        hdr.type_of_loader = QEMU_LOADER_ID
        hdr.loadflags |= CAN_USE_HEAP
        hdr.heap_end_ptr = CMDLINE_ADDR - REAL_ADDR - 0x200
    if initrd is not None:
        if len(initrd) > initrd_max:
            raise LoadError(f"initrd is too large for fw_cfg: {len(initrd):#x} bytes, at most {initrd_max:#x}")
        initrd_addr = (initrd_max - len(initrd)) & ~0xFFF
        keys.update({Key.INITRD_ADDR: _u32(initrd_addr), Key.INITRD_SIZE: _u32(len(initrd)),
                     Key.INITRD_DATA: initrd})
        if bzimage:
            hdr.ramdisk_image, hdr.ramdisk_size = initrd_addr, len(initrd)
    if bzimage:
        setup = setup_size(hdr)
        n = min(SETUP_DATA_MAX, setup)
        keys.update({Key.KERNEL_ADDR: _u32(PROT_ADDR), Key.KERNEL_SIZE: _u32(len(kernel) - setup),
                     Key.KERNEL_DATA: whole[setup:], Key.SETUP_ADDR: _u32(REAL_ADDR),
                     Key.SETUP_SIZE: _u32(setup), Key.SETUP_DATA: bytes(header[:n]) + kernel[n:setup]})
    else:
        keys.update({Key.KERNEL_ADDR: _u32(min(s.gpa for s in parsed.segments)), Key.KERNEL_SIZE: _u32(len(kernel)),
                     Key.KERNEL_DATA: whole, Key.SETUP_SIZE: _u32(0), Key.SETUP_DATA: b""})
        if parsed.pvh_entry is not None:
            keys[Key.KERNEL_ENTRY] = _u32(parsed.pvh_entry)
    return keys, (FwCfgFile("etc/boot/kernel", whole),)

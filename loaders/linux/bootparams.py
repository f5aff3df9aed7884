"""Linux's boot_params ("zero page"), its setup_header and the e820 entry, declared once with named fields.

The layouts follow arch/x86/include/uapi/asm/bootparam.h and Documentation/arch/x86/boot.rst and
zero-page.rst: the setup header sits at 0x1f1 both in a bzImage file and in boot_params, so one declaration
reads a kernel's header and writes a zero page. Only the boot_params fields pyvmm uses are named; the rest is
padding at the kernel's offsets (tests/test_linux.py checks each offset against those documents).
"""

from __future__ import annotations

import ctypes
from ctypes import c_uint8, c_uint16, c_uint32, c_uint64

HDRS = 0x53726448                 # "HdrS", setup_header.header
BOOT_FLAG = 0xAA55                # setup_header.boot_flag
E820_RAM, E820_RESERVED = 1, 2    # e820 entry types
E820_MAX = 128                    # E820_MAX_ENTRIES_ZEROPAGE: the zero page's table
ZERO_PAGE_SIZE = 4096


class SetupHeader(ctypes.LittleEndianStructure):
    """struct setup_header (boot protocol 2.15), 0x1f1..0x26c of boot_params and of a bzImage."""
    _pack_ = 1
    _fields_ = [
        ("setup_sects", c_uint8), ("root_flags", c_uint16), ("syssize", c_uint32), ("ram_size", c_uint16),
        ("vid_mode", c_uint16), ("root_dev", c_uint16), ("boot_flag", c_uint16), ("jump", c_uint16),
        ("header", c_uint32), ("version", c_uint16), ("realmode_swtch", c_uint32), ("start_sys_seg", c_uint16),
        ("kernel_version", c_uint16), ("type_of_loader", c_uint8), ("loadflags", c_uint8),
        ("setup_move_size", c_uint16), ("code32_start", c_uint32), ("ramdisk_image", c_uint32),
        ("ramdisk_size", c_uint32), ("bootsect_kludge", c_uint32), ("heap_end_ptr", c_uint16),
        ("ext_loader_ver", c_uint8), ("ext_loader_type", c_uint8), ("cmd_line_ptr", c_uint32),
        ("initrd_addr_max", c_uint32), ("kernel_alignment", c_uint32), ("relocatable_kernel", c_uint8),
        ("min_alignment", c_uint8), ("xloadflags", c_uint16), ("cmdline_size", c_uint32),
        ("hardware_subarch", c_uint32), ("hardware_subarch_data", c_uint64), ("payload_offset", c_uint32),
        ("payload_length", c_uint32), ("setup_data", c_uint64), ("pref_address", c_uint64),
        ("init_size", c_uint32), ("handover_offset", c_uint32), ("kernel_info_offset", c_uint32),
    ]


class E820Entry(ctypes.LittleEndianStructure):
    """struct boot_e820_entry: 20 packed bytes, the form of the zero page's table and of fw_cfg's etc/e820."""
    _pack_ = 1
    _fields_ = [("addr", c_uint64), ("size", c_uint64), ("type", c_uint32)]


SETUP_HEADER = 0x1F1
E820_TABLE = 0x2D0


class BootParams(ctypes.LittleEndianStructure):
    """struct boot_params, 4096 bytes; unnamed stretches are fields pyvmm leaves zero."""
    _pack_ = 1
    _fields_ = [
        ("_before_acpi_rsdp", c_uint8 * 0x070), ("acpi_rsdp_addr", c_uint64),
        ("_before_e820_entries", c_uint8 * (0x1E8 - 0x078)), ("e820_entries", c_uint8),
        ("_before_hdr", c_uint8 * (SETUP_HEADER - 0x1E9)), ("hdr", SetupHeader),
        ("_before_e820_table", c_uint8 * (E820_TABLE - SETUP_HEADER - ctypes.sizeof(SetupHeader))),
        ("e820_table", E820Entry * E820_MAX),
        ("_rest", c_uint8 * (ZERO_PAGE_SIZE - E820_TABLE - E820_MAX * ctypes.sizeof(E820Entry))),
    ]


# setup_header fields with fixed meanings
LOADED_HIGH = 0x01                # loadflags: the protected-mode code loads at 0x100000
CAN_USE_HEAP = 0x80               # loadflags: heap_end_ptr is valid
XLF_KERNEL_64 = 0x01              # xloadflags: a 64-bit entry at the load address + 0x200
XLF_CAN_BE_LOADED_ABOVE_4G = 0x02
HEADER_AT = SETUP_HEADER + SetupHeader.header.offset          # 0x202: where "HdrS" is in a file
SETUP_HEADER_END = SETUP_HEADER + ctypes.sizeof(SetupHeader)  # 0x26c


def is_bzimage(data: bytes | bytearray | memoryview) -> bool:
    """True when data carries the 'HdrS' setup-header magic at 0x202."""
    return len(data) >= HEADER_AT + 4 and int.from_bytes(data[HEADER_AT:HEADER_AT + 4], "little") == HDRS


def setup_header(data: bytes | bytearray | memoryview) -> SetupHeader:
    """A copy of the setup header of a kernel file (at least SETUP_HEADER_END bytes: the caller checks)."""
    return SetupHeader.from_buffer_copy(data, SETUP_HEADER)


def e820_bytes(entries: list[tuple[int, int, int]]) -> bytes:
    """(addr, size, type) entries packed as the 20-byte e820 form."""
    return b"".join(bytes(E820Entry(*e)) for e in entries)

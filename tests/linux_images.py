"""Probe kernels for direct-boot tests: the same probe code as an ELF vmlinux and inside a minimal bzImage
with a real setup header (protocol 2.15, 64-bit entry at +0x200 of the protected-mode code)."""

from __future__ import annotations

import struct

from tests.guests.build import build

VMLINUX_LOAD = 0x1000000
BZIMAGE_ENTRY = 0x100200
PROBE_PREF_ADDRESS = 0x1000000     # make_bzimage's pref_address


def probe_vmlinux(pvh: bool = False) -> bytes:
    """The probe as an ELF vmlinux; pvh: with a PVH entry note (tests/guests/pvh_note.S) as a real vmlinux has."""
    extra = ("linux_probe.c", "pvh_note.S") if pvh else ("linux_probe.c",)
    return build("linux_start.S", extra_sources=extra, load_addr=VMLINUX_LOAD, elf=True)


def make_bzimage(pm_code: bytes, *, version: int = 0x020F, xloadflags: int = 0x3, setup_sects: int = 1,
                 initrd_addr_max: int = 0x7FFFFFFF, init_size: int = 1 << 20) -> bytes:
    """Boot sector + setup sectors with the header at 0x1f1, then 0x200 bytes of 'startup_32' and the code."""
    setup = bytearray((setup_sects + 1) * 512)
    pm = bytes(0x200) + pm_code
    setup[0x1F1] = setup_sects
    struct.pack_into("<I", setup, 0x1F4, (len(pm) + 15) // 16)          # syssize
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200:0x202] = b"\xeb\x66"                                       # jmp over the header
    setup[0x201] = 0x66                                                   # header ends at 0x202 + 0x66 = 0x268
    struct.pack_into("<IH", setup, 0x202, 0x53726448, version)
    setup[0x211] = 0x01                                                   # LOADED_HIGH
    struct.pack_into("<I", setup, 0x214, 0x100000)
    struct.pack_into("<I", setup, 0x22C, initrd_addr_max)
    struct.pack_into("<IBBH", setup, 0x230, 0x200000, 1, 21, xloadflags)
    struct.pack_into("<I", setup, 0x238, 2047)
    struct.pack_into("<Q", setup, 0x258, PROBE_PREF_ADDRESS)
    struct.pack_into("<I", setup, 0x260, init_size)
    return bytes(setup) + pm


def probe_bzimage(**kw) -> bytes:
    return make_bzimage(build("linux_start.S", extra_sources=("linux_probe.c",), load_addr=BZIMAGE_ENTRY), **kw)

"""A synthetic 6 MiB UEFI firmware image: a boot firmware volume at 0x5E0000 holding a driver file and a
SECURITY_CORE file (a RAW section, then a PE32 section) whose entry point is a test guest's code."""

from __future__ import annotations

import struct

from loaders.uefi.layout import IMAGE_GPA_BASE, IMAGE_SIZE, SEC_FIRMWARE_VOLUME_OFFSET

FV = SEC_FIRMWARE_VOLUME_OFFSET
FV_HEADER_LENGTH = 0x48
PE_IMAGE_OFFSET = FV + FV_HEADER_LENGTH + 0x30 + 24 + 12 + 4      # where the PE32 section's image starts
ENTRY_RVA = 0x160
CODE_OFFSET = PE_IMAGE_OFFSET + ENTRY_RVA                         # 0x5E0200
CODE_GPA = IMAGE_GPA_BASE + CODE_OFFSET                           # link the SEC code here


def _ffs(ftype: int, body: bytes) -> bytes:
    size = 24 + len(body)
    return bytes(16) + struct.pack("<HBB", 0, ftype, 0) + size.to_bytes(3, "little") + b"\xf8" + body


def synthetic_firmware(code: bytes) -> bytes:
    """The image; `code` (linked at CODE_GPA) runs as the SEC entry point."""
    image = bytearray(IMAGE_SIZE)
    fv_len = IMAGE_SIZE - FV
    header = bytes(16) + bytes(16) + struct.pack("<QIIHHHBB", fv_len, 0x4856465F, 0, FV_HEADER_LENGTH, 0, 0, 0, 2)
    image[FV:FV + len(header)] = header
    pos = FV + FV_HEADER_LENGTH
    driver = _ffs(0x07, bytes(24))
    image[pos:pos + len(driver)] = driver
    pos += len(driver)
    pe = bytearray(ENTRY_RVA)
    pe[0:2] = b"MZ"
    struct.pack_into("<i", pe, 0x3C, 0x40)
    pe[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<I", pe, 0x40 + 40, ENTRY_RVA)
    pe += code
    raw = (12).to_bytes(3, "little") + b"\x19" + bytes(8)
    pe32 = (4 + len(pe)).to_bytes(3, "little") + b"\x10" + bytes(pe)
    sec = _ffs(0x03, raw + pe32)
    assert pos + 24 + len(raw) + 4 == PE_IMAGE_OFFSET
    image[pos:pos + len(sec)] = sec
    assert pos + len(sec) <= IMAGE_SIZE - 0x1000
    return bytes(image)

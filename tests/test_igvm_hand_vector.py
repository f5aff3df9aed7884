"""An IGVM file written out by hand, field by field, from the format definition (microsoft/igvm, igvm_defs/src/
lib.rs: IGVM_FIXED_HEADER_V2, IGVM_VHS_* and IgvmNativeVpContextX64), without pyvmm's structs or writer.

The golden files in tests/data/igvm are the writer's own output, so they can only catch a change, not a
misreading of the format both reader and writer share. These bytes are an independent vector: the reader must
parse them to the model named below, the writer must produce them byte for byte, and the planner must place
what they say where they say it.
"""

import zlib

from loaders.igvm import (ErrorRange, HeaderType, IgvmFile, PageData, Platform, RequiredMemory, SupportedPlatform,
                          VpContext, read_igvm, write_igvm)
from loaders.igvm.describe import describe
from loaders.igvm.load import igvm_plan
from loaders.igvm.model import ParameterArea, ParameterInsert, ParameterUsage


def u8(v: int) -> bytes:
    return v.to_bytes(1, "little")


def u16(v: int) -> bytes:
    return v.to_bytes(2, "little")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def header(typ: int, body: bytes) -> bytes:
    """IGVM_VHS_VARIABLE_HEADER {typ: u32, length: u32} + body, padded to 8 bytes (length is unpadded)."""
    return u32(typ) + u32(len(body)) + body + bytes(-len(body) % 8)


DATA_START = 0x120          # 32-byte fixed header + 0x100 bytes of variable headers (laid out below)
CODE_PAGE = DATA_START      # file offset of the one page of code
CONTEXT_PAGE = DATA_START + 0x1000

VARIABLE_HEADERS = [
    # 0x20: #0 IGVM_VHT_SUPPORTED_PLATFORM (0x001), IGVM_VHS_SUPPORTED_PLATFORM, 16 bytes
    header(0x001, u32(1)            # compatibility_mask: bit 0
           + u8(0)                  # highest_vtl
           + u8(0x00)               # platform_type: NATIVE
           + u16(1)                 # platform_version
           + u64(0)),               # shared_gpa_boundary
    # 0x38: #1 IGVM_VHT_PARAMETER_AREA (0x301), IGVM_VHS_PARAMETER_AREA, 16 bytes
    header(0x301, u64(0x1000)       # number_of_bytes
           + u32(0)                 # parameter_area_index
           + u32(0)),               # file_offset: 0 = the area starts as zeros
    # 0x50: #2 IGVM_VHT_VP_COUNT_PARAMETER (0x307), IGVM_VHS_PARAMETER, 8 bytes
    header(0x307, u32(0)            # parameter_area_index
           + u32(0)),               # byte_offset
    # 0x60: #3 IGVM_VHT_MEMORY_MAP (0x30C), IGVM_VHS_PARAMETER
    header(0x30C, u32(0) + u32(8)),
    # 0x70: #4 IGVM_VHT_PARAMETER_INSERT (0x303), IGVM_VHS_PARAMETER_INSERT, 16 bytes
    header(0x303, u64(0x20000)      # gpa
           + u32(1)                 # compatibility_mask
           + u32(0)),               # parameter_area_index
    # 0x88: #5 IGVM_VHT_PAGE_DATA (0x302), IGVM_VHS_PAGE_DATA, 24 bytes
    header(0x302, u64(0x1000)       # gpa
           + u32(1)                 # compatibility_mask
           + u32(CODE_PAGE)         # file_offset
           + u32(0)                 # flags: a 4 KiB, measured, private page
           + u16(0)                 # data_type: NORMAL
           + u16(0)),               # reserved
    # 0xA8: #6 IGVM_VHT_PAGE_DATA: a zero page (file_offset 0)
    header(0x302, u64(0x2000) + u32(1) + u32(0) + u32(0) + u16(0) + u16(0)),
    # 0xC8: #7 IGVM_VHT_REQUIRED_MEMORY (0x305), IGVM_VHS_REQUIRED_MEMORY, 24 bytes
    header(0x305, u64(0)            # gpa
           + u32(1)                 # compatibility_mask
           + u32(0x100000)          # number_of_bytes
           + u32(0)                 # flags
           + u32(0)),               # reserved
    # 0xE8: #8 IGVM_VHT_ERROR_RANGE (0x30D), IGVM_VHS_ERROR_RANGE, 16 bytes
    header(0x30D, u64(0x3000)       # gpa
           + u32(1)                 # compatibility_mask
           + u32(0x1000)),          # size_bytes
    # 0x100: #9 IGVM_VHT_VP_CONTEXT (0x304), IGVM_VHS_VP_CONTEXT, 20 bytes (+4 padding)
    header(0x304, u64(0)            # gpa (unused for NATIVE)
           + u32(1)                 # compatibility_mask
           + u32(CONTEXT_PAGE)      # file_offset
           + u16(0)                 # vp_index
           + u16(0)),               # reserved
]


def native_context() -> bytes:
    """IgvmNativeVpContextX64 (232 bytes) in a zero-filled page: flat 32-bit protected mode at 0x1000."""
    ctx = (u64(0) * 16              # 0x00: rax rcx rdx rbx rsp rbp rsi rdi r8-r15
           + u64(0x1000)            # 0x80: rip
           + u64(0x2)               # 0x88: rflags (bit 1 is always set)
           + u64(0)                 # 0x90: idtr_base
           + u16(0)                 # 0x98: idtr_limit
           + u16(0) * 2             # 0x9A: reserved[2]
           + u16(0x17)              # 0x9E: gdtr_limit
           + u64(0x5000)            # 0xA0: gdtr_base
           + u16(0x08)              # 0xA8: code_selector
           + u16(0xC09B)            # 0xAA: code_attributes: G, D, P, S, type 0xB
           + u32(0)                 # 0xAC: code_base
           + u32(0xFFFFFFFF)        # 0xB0: code_limit
           + u16(0x10)              # 0xB4: data_selector
           + u16(0xC093)            # 0xB6: data_attributes
           + u32(0)                 # 0xB8: data_base
           + u32(0xFFFFFFFF)        # 0xBC: data_limit
           + u64(0)                 # 0xC0: gs_base
           + u64(0x11)              # 0xC8: cr0: PE | ET
           + u64(0)                 # 0xD0: cr3
           + u64(0)                 # 0xD8: cr4
           + u64(0))                # 0xE0: efer
    assert len(ctx) == 232
    return ctx + bytes(0x1000 - len(ctx))


CODE = b"\xf4\xeb\xfd" + bytes(0x1000 - 3)       # hlt; jmp back to the hlt


def hand_file() -> bytes:
    var = b"".join(VARIABLE_HEADERS)
    assert len(var) == 0x100 and 0x20 + len(var) == DATA_START
    data = CODE + native_context()
    total = DATA_START + len(data)
    fixed = (u32(0x4D564749)        # magic "IGVM"
             + u32(2)               # format_version
             + u32(0x20)            # variable_header_offset: right after this 32-byte header
             + u32(len(var))        # variable_header_size
             + u32(total)           # total_file_size
             + u32(0)               # checksum: zero while it is computed
             + u32(0)               # architecture: X64
             + u32(0x1000))         # page_size
    # checksum: CRC-32 (zlib's) of the fixed header with checksum 0, then the variable headers
    crc = zlib.crc32(var, zlib.crc32(fixed))
    return fixed[:20] + u32(crc) + fixed[24:] + var + data


def expected_model() -> IgvmFile:
    return IgvmFile(version=2, platforms=(SupportedPlatform(1, 0, Platform.NATIVE, 1, 0),), directives=(
        ParameterArea(number_of_bytes=0x1000, parameter_area_index=0, initial_data=None),
        ParameterUsage(HeaderType.VP_COUNT_PARAMETER, parameter_area_index=0, byte_offset=0),
        ParameterUsage(HeaderType.MEMORY_MAP, parameter_area_index=0, byte_offset=8),
        ParameterInsert(gpa=0x20000, compatibility_mask=1, parameter_area_index=0),
        PageData(gpa=0x1000, compatibility_mask=1, flags=0, data_type=0, data=CODE),
        PageData(gpa=0x2000, compatibility_mask=1, flags=0, data_type=0, data=None),
        RequiredMemory(gpa=0, compatibility_mask=1, number_of_bytes=0x100000, flags=0),
        ErrorRange(gpa=0x3000, compatibility_mask=1, size_bytes=0x1000),
        VpContext(gpa=0, compatibility_mask=1, vp_index=0, data=native_context())))


def test_reader_parses_the_hand_written_file():
    raw = hand_file()
    f = read_igvm(raw)
    assert f == expected_model()
    assert list(f.header_offsets) == [0x20, 0x38, 0x50, 0x60, 0x70, 0x88, 0xA8, 0xC8, 0xE8, 0x100]
    assert f.directives[4].file_offset == CODE_PAGE


def test_writer_produces_the_hand_written_bytes():
    assert write_igvm(expected_model()) == hand_file()


def test_dump_reports_the_hand_written_fields():
    raw = hand_file()
    info = describe(read_igvm(raw), raw)
    assert info["file"] == {"version": 2, "architecture": "X64", "page_size": 0x1000, "size": 0x2120,
                            "checksum": int.from_bytes(raw[20:24], "little")}
    ctx = next(d for d in info["directives"] if d["type"] == "VP_CONTEXT")
    assert ctx["offset"] == 0x100 and ctx["platform"] == "NATIVE"
    assert (ctx["registers"]["rip"], ctx["registers"]["gdtr_base"], ctx["registers"]["code_attributes"]) == \
        (0x1000, 0x5000, 0xC09B)
    assert info["page_ranges"] == [{"first_gpa": 0x1000, "end_gpa": 0x3000, "pages": 2, "compatibility_mask": 1,
                                    "flags": 0, "data_type": "NORMAL", "zero_pages": 1}]


def test_planner_places_what_the_hand_written_file_says():
    f = read_igvm(hand_file())
    plan = igvm_plan(f, f.platforms[0])
    assert [(w.gpa, bytes(w.data)) for w in plan.writes] == [(0x1000, CODE)]
    assert [(z.gpa, z.size) for z in plan.zeros] == [(0x2000, 0x1000), (0x3000, 0x1000)]
    assert [(p.gpa, p.size, p.usages) for p in plan.parameters] == \
        [(0x20000, 0x1000, [("VP_COUNT_PARAMETER", 0), ("MEMORY_MAP", 8)])]
    assert plan.required_memory == [(0, 0x100000)]
    vp = plan.vps[0]
    assert (vp.regs["rip"], vp.cr0, vp.gdtr, vp.segments["cs"].attributes) == (0x1000, 0x11, (0x5000, 0x17), 0xC09B)

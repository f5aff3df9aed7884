"""The IGVM reader and writer: spec vectors byte for byte, every rule with a negative file, round trips."""

import hashlib
import struct

import pytest

from loaders.errors import IgvmError
from loaders.igvm import HeaderType, IgvmFile, PageData, Platform, SupportedPlatform, read_igvm, write_igvm
from loaders.igvm import structs
from loaders.igvm.vpcontext import native_context_to_state, parse_native_context, parse_vbs_context, vbs_to_state
from tests.igvm_samples import multi_platform, patch, vector_a, vector_b, with_area_initial_data


def test_structure_sizes_match_the_spec_table():
    sizes = {structs.FIXED_HEADER_V1: 24, structs.FIXED_HEADER_V2: 32, structs.VARIABLE_HEADER: 8,
             structs.SUPPORTED_PLATFORM: 16, structs.GUEST_POLICY: 16, structs.CCA_POLICY: 32,
             structs.RELOCATABLE_REGION: 48, structs.PAGE_TABLE_RELOCATION: 32, structs.PARAMETER_AREA: 16,
             structs.PAGE_DATA: 24, structs.PARAMETER_INSERT: 16, structs.PARAMETER: 8, structs.VP_CONTEXT: 20,
             structs.ERROR_RANGE: 16, structs.REQUIRED_MEMORY: 24, structs.MEMORY_RANGE: 16,
             structs.MMIO_RANGES: 32, structs.SNP_ID_BLOCK: 696, structs.VBS_MEASUREMENT: 864,
             structs.MEMORY_MAP_ENTRY: 24, structs.CORIM_DATA: 16, structs.NATIVE_VP_CONTEXT_X64: 232,
             structs.VBS_REGISTER: 32}
    for layout, size in sizes.items():
        assert layout.size == size, layout.name


def test_spec_vector_a_byte_for_byte():
    raw = write_igvm(vector_a())
    assert len(raw) == 0x1050
    assert struct.unpack_from("<I", raw, 20)[0] == 0xE79339A1
    assert hashlib.sha256(raw).hexdigest() == "821f6422248164f8472bd173f9edc3052eadb3704b881e3a23639becddc45cc2"


def test_spec_vector_b_byte_for_byte():
    raw = write_igvm(vector_b())
    assert len(raw) == 0x2078
    assert struct.unpack_from("<I", raw, 20)[0] == 0xEDA833FD
    assert hashlib.sha256(raw).hexdigest() == "e9dd49b9e0181931b815d501949ed73141a4edd81ff3173204ec5008a0c62889"
    f = read_igvm(raw)
    ctx = parse_native_context(f.directives[1].data)
    assert ctx["rip"] == 0x1000 and ctx["code_attributes"] == 0xC09B and ctx["cr0"] == 0x11
    vp = native_context_to_state(ctx)
    assert vp.segments["cs"].selector == 8 and vp.segments["ss"].attributes == 0xC093


@pytest.mark.parametrize("make", [vector_a, vector_b, multi_platform, with_area_initial_data])
def test_round_trips(make):
    model = make()
    raw = write_igvm(model)
    back = read_igvm(raw)
    assert back == model
    assert write_igvm(back) == raw


def test_identical_page_data_is_stored_once():
    from loaders.igvm import IgvmBuilder
    one, two = IgvmBuilder(), IgvmBuilder()
    for b, n in ((one, 1), (two, 50)):
        mask = b.platform(Platform.NATIVE)
        for i in range(n):
            b.pages(0x100000 + i * 0x1000, b"same page", mask)
    raw1, raw2 = one.build(), two.build()
    assert len(raw2) - len(raw1) == 49 * 32     # 49 more headers, no more data
    f = read_igvm(raw2)
    assert len({d.data.obj and bytes(d.data) for d in f.directives}) == 1


def test_page_data_is_a_view_not_a_copy():
    raw = bytearray(write_igvm(vector_a()))
    f = read_igvm(raw)
    raw[0x50] = 0x90
    assert f.directives[0].data[0] == 0x90     # the directive refers into the caller's buffer


def test_for_platform_filters_by_mask_in_file_order():
    f = read_igvm(write_igvm(multi_platform()))
    native = f.for_platform(Platform.NATIVE)
    snp = f.for_platform(Platform.SEV_SNP)
    assert not any(d.kind == HeaderType.SNP_ID_BLOCK for d in native)
    assert any(d.kind == HeaderType.SNP_ID_BLOCK for d in snp)
    assert [d.kind for d in native if d.kind == HeaderType.VP_CONTEXT] == [HeaderType.VP_CONTEXT]
    # unmasked parameter headers apply to every platform, in file order
    assert [d.kind for d in native if d.kind in (HeaderType.PARAMETER_AREA, HeaderType.VP_COUNT_PARAMETER)][:2] == \
        [HeaderType.PARAMETER_AREA, HeaderType.VP_COUNT_PARAMETER]
    with pytest.raises(KeyError):
        read_igvm(write_igvm(vector_a())).for_platform(Platform.TDX)


def test_vbs_context_parses_to_registers_and_msrs():
    f = read_igvm(write_igvm(multi_platform()))
    vsm_mask = f.platform(Platform.VSM_ISOLATION).compatibility_mask
    ctx = next(d for d in f.directives if d.kind == HeaderType.VP_CONTEXT and d.compatibility_mask == vsm_mask)
    vp = vbs_to_state(parse_vbs_context(ctx.data))
    assert vp.regs["rip"] == 0x100000 and vp.gdtr == (0x1000, 0x1F)
    assert vp.segments["cs"].attributes == 0xA09B and vp.msrs[0x277] == 0x0007040600070406


A = write_igvm(vector_a())           # platform header at 0x18, page data header at 0x30 (body 0x38)
B = write_igvm(vector_b())           # v2: platform 0x20, page data 0x38, vp context 0x58


@pytest.mark.parametrize("raw,words", [
    (b"", "shorter than"),
    (b"XGVM" + A[4:], "bad magic"),
    (A[:4] + b"\x03" + A[5:], "format version 3"),
    (A[:16] + struct.pack("<I", len(A) + 1) + A[20:], "total_file_size"),
    (A + b"\0", "total_file_size"),
    (A[:20] + b"\0\0\0\0" + A[24:], "checksum"),
    (A[:0x40] + bytes([A[0x40] ^ 1]) + A[0x41:], "checksum"),
    (patch(A, 0x38, struct.pack("<Q", 0x1001)), "not 0x1000-aligned"),
    (patch(A, 0x30, struct.pack("<I", 0x80000302)), "optional bit"),
    (patch(A, 0x30, struct.pack("<I", 0x306)), "reserved"),
    (patch(A, 0x30, struct.pack("<I", 0x399)), "unknown"),
    (patch(A, 0x20, struct.pack("<I", 3)), "exactly one bit"),
    (patch(A, 0x25, b"\x09"), "unknown platform type"),
    (patch(A, 0x24, b"\x01"), "highest VTL 1"),
    (patch(A, 0x40, struct.pack("<I", 2)), "names platforms the file does not declare"),
    (patch(A, 0x40, struct.pack("<I", 0)), "applies to no platform"),
    (patch(A, 0x44, struct.pack("<I", 0x10)), "before the file data section"),
    (patch(A, 0x44, struct.pack("<I", 0x51)), "past the end"),
    (patch(A, 0x4C, struct.pack("<H", 4)), "page data type 4"),
    (patch(A, 0x4E, struct.pack("<H", 1)), "reserved field"),
    (patch(B, 0x5C, struct.pack("<I", 0x18)), "length 24"),
    (patch(B, 0x1078 + 300, b"\x01"), "non-zero bytes after"),
    (patch(B, 0x1078 + 0xAA, struct.pack("<H", 0xC19B)), "bits 11:8"),
    (patch(B, 0x60 + 8, struct.pack("<I", 3)), "not exactly one declared platform"),
])
def test_bad_files_name_the_rule(raw, words):
    with pytest.raises(IgvmError, match=words):
        read_igvm(raw)


def test_error_names_header_index_and_offset():
    with pytest.raises(IgvmError, match=r"header #1 \(PAGE_DATA\) at file offset 0x30"):
        read_igvm(patch(A, 0x38, struct.pack("<Q", 0x1001)))


def test_empty_data_section_is_rejected_like_the_igvm_crate():
    raw = bytearray(A[:0x50])
    raw[16:20] = struct.pack("<I", 0x50)
    with pytest.raises(IgvmError):
        read_igvm(patch(bytes(raw), 0x44, struct.pack("<I", 0)))


def test_platform_after_directive_and_duplicate_platform():
    from loaders.igvm import IgvmFile, PageData, SupportedPlatform
    two = IgvmFile(1, (SupportedPlatform(1, 0, Platform.NATIVE), SupportedPlatform(2, 0, Platform.NATIVE)))
    with pytest.raises(IgvmError, match="second NATIVE platform"):
        read_igvm(write_igvm(two))
    raw = write_igvm(IgvmFile(1, (SupportedPlatform(1, 0, Platform.NATIVE), SupportedPlatform(2, 0, Platform.TDX)),
                              directives=(PageData(0, 1),)))
    # swap the second platform header (0x30) with the page data header (0x48): platform after a directive
    swapped = raw[:0x30] + raw[0x48:0x68] + raw[0x30:0x48] + raw[0x68:]
    with pytest.raises(IgvmError, match="platform header after a directive"):
        read_igvm(patch(swapped, 0, swapped[:1]))


def test_parameter_rules():
    from loaders.igvm import IgvmFile, SupportedPlatform
    from loaders.igvm.model import ParameterArea, ParameterInsert, ParameterUsage
    plat = (SupportedPlatform(1, 0, Platform.NATIVE),)
    cases = {
        "not declared before its insert": (ParameterInsert(0x1000, 1, 0), ParameterArea(0x1000, 0)),
        "not declared before its use": (ParameterUsage(HeaderType.VP_COUNT_PARAMETER, 0, 0),),
        "declared twice": (ParameterArea(0x1000, 0), ParameterArea(0x1000, 0)),
        "inserted a second time": (ParameterArea(0x1000, 0), ParameterInsert(0, 1, 0), ParameterInsert(0x1000, 1, 0)),
        "already inserted": (ParameterArea(0x1000, 0), ParameterInsert(0, 1, 0),
                             ParameterUsage(HeaderType.MADT, 0, 0)),
        "outside parameter area": (ParameterArea(0x1000, 0), ParameterUsage(HeaderType.MADT, 0, 0x1000)),
        "not a non-zero multiple": (ParameterArea(0x800, 0),),
    }
    for words, directives in cases.items():
        with pytest.raises(IgvmError, match=words):
            read_igvm(write_igvm(IgvmFile(1, plat, directives=directives)))


# Two pages: the second PAGE_DATA follows a directive, so the reader's fast path for page runs reads it.
TWO_PAGES = write_igvm(IgvmFile(1, (SupportedPlatform(1, 0, Platform.NATIVE),), directives=(
    PageData(0x1000, 1, data=b"\xeb\xfe" + bytes(4094)), PageData(0x2000, 1, data=b"\x90" * 4096))))


@pytest.mark.parametrize("at,value,words", [
    (0x58, struct.pack("<Q", 0x2001), "not 0x1000-aligned"),
    (0x60, struct.pack("<I", 2), "names platforms the file does not declare"),
    (0x60, struct.pack("<I", 0), "applies to no platform"),
    (0x64, struct.pack("<I", 0x10), "before the file data section"),
    (0x64, struct.pack("<I", len(TWO_PAGES) - 0x800), "past the end"),
    (0x6C, struct.pack("<H", 4), "page data type 4"),
    (0x6E, struct.pack("<H", 1), "reserved field"),
])
def test_a_bad_page_in_a_run_of_pages_names_its_header_and_rule(at, value, words):
    assert read_igvm(TWO_PAGES).directives[1] == PageData(0x2000, 1, data=b"\x90" * 4096)
    with pytest.raises(IgvmError, match=rf"header #2 \(PAGE_DATA\) at file offset 0x50: .*{words}"):
        read_igvm(patch(TWO_PAGES, at, value))

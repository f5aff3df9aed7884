"""IGVM models used by several tests: the spec's vectors A and B, and richer files of every header kind."""

from __future__ import annotations

from loaders.igvm import (GuestPolicy, HeaderType, IgvmBuilder, IgvmFile, PageData, Platform, RequiredMemory,
                          SnpIdBlock, SupportedPlatform, VbsMeasurement, VpContext)
from loaders.igvm.model import ErrorRange, ParameterArea, ParameterInsert, ParameterUsage
from loaders.igvm.vpcontext import VbsRegister, build_native_context, build_vbs_context, vbs_segment, vbs_table


def vector_a() -> IgvmFile:
    """Spec 17.2 vector A: v1, NATIVE, one page holding `jmp $`."""
    return IgvmFile(1, (SupportedPlatform(1, 0, Platform.NATIVE),),
                    directives=(PageData(0x1000, 1, data=b"\xeb\xfe" + bytes(4094)),))


def vector_b() -> IgvmFile:
    """Spec 17.2 vector B: v2, NATIVE, the page plus a 32-bit flat native VP context for the BSP."""
    ctx = build_native_context(rip=0x1000, rflags=2, code_selector=0x08, code_attributes=0xC09B,
                               code_limit=0xFFFFFFFF, data_selector=0x10, data_attributes=0xC093,
                               data_limit=0xFFFFFFFF, cr0=0x11)
    return IgvmFile(2, (SupportedPlatform(1, 0, Platform.NATIVE),),
                    directives=(PageData(0x1000, 1, data=b"\xeb\xfe" + bytes(4094)), VpContext(0, 1, 0, ctx)))


def multi_platform() -> IgvmFile:
    """NATIVE + VSM + SEV-SNP + TDX in one v2 file, with parameters, policies, ID block and measurement."""
    b = IgvmBuilder(version=2)
    native = b.platform(Platform.NATIVE)
    vsm = b.platform(Platform.VSM_ISOLATION)
    snp = b.platform(Platform.SEV_SNP, highest_vtl=0)
    tdx = b.platform(Platform.TDX)
    every = native | vsm | snp | tdx
    b.add(GuestPolicy(0x30000, snp))
    b.add(GuestPolicy(0x1, tdx))
    b.pages(0x100000, b"code" * 3000, every)
    b.pages(0x200000, bytes(8192), every)                         # zero pages, stored without data
    b.add(PageData(0x300000, snp, 0, 2, b"\x01" * 4096))           # SNP CPUID page
    b.add(PageData(0x301000, snp, 0, 1, None))                     # SNP secrets page
    for kind in (HeaderType.VP_COUNT_PARAMETER, HeaderType.MEMORY_MAP, HeaderType.COMMAND_LINE,
                 HeaderType.MADT, HeaderType.SRAT):
        b.parameter(kind, 0x400000 + 0x1000 * int(kind - 0x300), every)
    b.add(RequiredMemory(0x0, every, 0x800000))
    b.add(ErrorRange(0x500000, native, 0x1000))
    b.add(VpContext(0, native, 0, build_native_context(rip=0x100000, rflags=2, cr0=0x80000011, cr3=0x9000,
                                                       cr4=0x20, efer=0x500, code_selector=8, code_attributes=0xA09B,
                                                       data_selector=0x10, data_attributes=0xC093, r12=0x709000)))
    regs = [VbsRegister(0, "rip", (0x100000).to_bytes(16, "little")),
            VbsRegister(0, "cs", vbs_segment(8, 0, 0xFFFFFFFF, 0xA09B)),
            VbsRegister(0, "gdtr", vbs_table(0x1000, 0x1F)),
            VbsRegister(0, "pat", (0x0007040600070406).to_bytes(16, "little"))]
    b.add(VpContext(0, vsm, 0, build_vbs_context(regs)))
    b.add(VpContext(0xFFFFFFFFF000, snp, 0, b"\x55" * 4096))         # a VMSA page (opaque)
    b.add(SnpIdBlock(snp, 0, b"L" * 48, b"F" * 16, b"I" * 16, 1, 2, 1, 1, b"s" * 144, b"k" * 152, bytes(144),
                     bytes(152)))
    b.add(VbsMeasurement(vsm, 1, 2, 3, 4, 5, 1, 1, b"d" * 64, b"g" * 256, b"p" * 512))
    return b.file()


def with_area_initial_data() -> IgvmFile:
    return IgvmFile(1, (SupportedPlatform(1, 0, Platform.NATIVE),), directives=(
        ParameterArea(0x2000, 7, b"\xaa" * 0x2000), ParameterUsage(HeaderType.COMMAND_LINE, 7, 0x10),
        ParameterInsert(0x9000, 1, 7), PageData(0, 1, data=None)))


def patch(raw: bytes, offset: int, new: bytes) -> bytes:
    """Edit bytes inside the variable headers and fix the CRC, to test a rule rather than the checksum."""
    import zlib

    from loaders.igvm.structs import CHECKSUM_OFFSET, FIXED_HEADER_V1
    b = bytearray(raw)
    b[offset:offset + len(new)] = new
    fh = FIXED_HEADER_V1.read(b, 0)
    fixed = 32 if fh.format_version == 2 else 24
    head = bytearray(b[:fixed])
    head[CHECKSUM_OFFSET:CHECKSUM_OFFSET + 4] = bytes(4)
    vh = b[fh.variable_header_offset:fh.variable_header_offset + fh.variable_header_size]
    crc = zlib.crc32(vh, zlib.crc32(head)) & 0xFFFFFFFF
    b[CHECKSUM_OFFSET:CHECKSUM_OFFSET + 4] = crc.to_bytes(4, "little")
    return bytes(b)


def header_bodies(raw: bytes) -> list[tuple[int, int]]:
    """(body offset, header type) of each variable header of a well-formed file, in file order."""
    from loaders.igvm.structs import FIXED_HEADER_V1, VARIABLE_HEADER
    fh = FIXED_HEADER_V1.read(raw, 0)
    pos, end, out = fh.variable_header_offset, fh.variable_header_offset + fh.variable_header_size, []
    while pos + VARIABLE_HEADER.size <= end:
        vh = VARIABLE_HEADER.read(raw, pos)
        out.append((pos + VARIABLE_HEADER.size, vh.typ))
        pos = (pos + VARIABLE_HEADER.size + vh.length + 7) & ~7
    return out


def set_field(raw: bytes, body: int, typ: int, name: str, value: int) -> bytes:
    """One field of the header whose body starts at `body` set to `value` (cut to the field's width, at most 8
    bytes), checksum fixed."""
    from loaders.igvm.structs import BODY_LAYOUTS
    off, width = BODY_LAYOUTS[typ].span(name)
    width = min(width, 8)
    return patch(raw, body + off, (value & ((1 << 8 * width) - 1)).to_bytes(width, "little"))

"""A UEFI firmware image (mu_msvm-style, 6 MiB) as igvmfilegen packages it: SEC entry discovery (OpenVMM
vm/loader/src/uefi/mod.rs) and the non-isolated UEFI IGVM with the IGVM parameter block at 0x709000 and R12 pointing
at it (OpenVMM vm/loader/igvmfilegen)."""

from __future__ import annotations

import struct

from ..errors import LoadError
from ..igvm import model as m
from ..igvm.builder import IgvmBuilder
from ..igvm.constants import HeaderType, PageDataFlags, Platform
from ..igvm.vpcontext import VbsRegister, build_native_context, build_vbs_context, vbs_segment, vbs_table
from ..x86 import flat_gdt, identity_page_tables
from . import layout as L

FV_SIGNATURE = 0x4856465F     # "_FVH"
FFS_SECURITY_CORE = 0x03
SECTION_PE32 = 0x10


def _u(fmt: str, data: bytes, off: int, what: str) -> int:
    if off < 0 or off + struct.calcsize(fmt) > len(data):
        raise LoadError(f"firmware image: {what} at offset {off:#x} lies outside the image")
    return struct.unpack_from(fmt, data, off)[0]


def _pe_entry(image: bytes, off: int) -> int:
    nt = _u("<i", image, off + 0x3C, "DOS header e_lfanew") if image[off:off + 2] == b"MZ" else 0
    sig = _u("<I", image, off + nt, "PE/TE signature")
    if sig & 0xFFFF == 0x5A56:       # "VZ": a TE image
        return _u("<I", image, off + nt + 8, "TE entry") + 40 - _u("<H", image, off + nt + 6, "TE stripped size")
    if sig == 0x00004550:            # "PE\0\0"
        return _u("<I", image, off + nt + 40, "PE AddressOfEntryPoint")
    raise LoadError(f"firmware image: the SEC core's PE32 section at {off:#x} is neither a PE nor a TE image")


def sec_entry_offset(image: bytes) -> int:
    """Offset in the image of the SEC core's entry point, found by walking the boot firmware volume."""
    off = L.SEC_FIRMWARE_VOLUME_OFFSET
    if _u("<I", image, off + 40, "firmware volume signature") != FV_SIGNATURE:
        raise LoadError(f"firmware image: no firmware volume ('_FVH') at offset {off:#x}")
    fv_length = _u("<Q", image, off + 32, "firmware volume length")
    off += _u("<H", image, off + 48, "firmware volume header length")
    vol = 0
    while True:
        if vol >= fv_length:
            raise LoadError("firmware image: the boot firmware volume has no SECURITY_CORE file")
        pad = -vol % 8
        vol, off = vol + pad, off + pad
        ftype = _u("<B", image, off + 18, "FFS file type")
        size = int.from_bytes(image[off + 20:off + 23], "little")
        if ftype == FFS_SECURITY_CORE:
            break
        if size < 24 or size == 0xFFFFFF:      # erased or empty space: the volume's files end here
            raise LoadError(f"firmware image: the boot firmware volume has no SECURITY_CORE file (the files end at "
                            f"{off:#x})")
        off, vol = off + size, vol + size
    file_size = size
    off, file_off = off + 24, 24
    while file_off < file_size:
        pad = -file_off % 4
        file_off, off = file_off + pad, off + pad
        ssize = int.from_bytes(image[off:off + 3], "little")
        stype = _u("<B", image, off + 3, "section type")
        if stype == SECTION_PE32:
            return off + 4 + _pe_entry(image, off + 4)
        if ssize < 4:
            raise LoadError(f"firmware image: section at {off:#x} has size {ssize}")
        off, file_off = off + ssize, file_off + ssize
    raise LoadError("firmware image: the SECURITY_CORE file has no PE32 section")


def uefi_registers(rip: int, r12: int | None = L.CONFIG_BLOB_GPA_BASE) -> dict[str, int]:
    regs = {"cr0": L.CR0, "cr3": L.PAGE_TABLE_GPA_BASE, "cr4": L.CR4, "efer": L.EFER, "rbp": L.RBP, "rip": rip,
            "r8": 0, "r9": 0, "r10": 0, "r11": 0}
    if r12 is not None:
        regs["r12"] = r12
    return regs


def build_uefi_igvm(image: bytes, *, native: bool = False, r12: bool = True) -> bytes:
    """The non-isolated UEFI IGVM igvmfilegen makes from `image` (VSM_ISOLATION v1; NATIVE v2 with native=True)."""
    if len(image) != L.IMAGE_SIZE:
        raise LoadError(f"firmware image is {len(image):#x} bytes; a UEFI image for this layout must be exactly "
                        f"{L.IMAGE_SIZE:#x} (6 MiB)")
    rip = L.IMAGE_GPA_BASE + sec_entry_offset(image)
    b = IgvmBuilder(version=2 if native else 1)
    mask = b.platform(Platform.NATIVE if native else Platform.VSM_ISOLATION)
    base = L.CONFIG_BLOB_GPA_BASE
    areas = ((1, HeaderType.VP_COUNT_PARAMETER, L.PARAM_LOADER_BLOCK_PAGE),
             (1, HeaderType.COMMAND_LINE, L.PARAM_COMMAND_LINE_PAGE),
             (L.PARAM_TABLE_PAGES, HeaderType.MEMORY_MAP, L.PARAM_MEMORY_MAP_PAGE),
             (L.PARAM_TABLE_PAGES, HeaderType.MADT, L.PARAM_MADT_PAGE),
             (L.PARAM_TABLE_PAGES, HeaderType.SRAT, L.PARAM_SRAT_PAGE))
    for i, (pages, usage, _) in enumerate(areas):
        b.add(m.ParameterArea(pages * 4096, i))
        b.add(m.ParameterUsage(usage, i, 0))
    b.add(m.RequiredMemory(0, mask, (L.PARAM_BLOCK_PAGES * 4096 + base)))
    regs = uefi_registers(rip, base if r12 else None)
    b.add(m.VpContext(0, mask, 0, _context(regs, native)))
    for i, (_, _, page) in enumerate(areas):
        b.add(m.ParameterInsert(base + page * 4096, mask, i))
    b.pages(L.IMAGE_GPA_BASE, image, mask)
    b.pages(L.PAGE_TABLE_GPA_BASE, identity_page_tables(L.PAGE_TABLE_GPA_BASE), mask)
    gdt, _ = flat_gdt()
    b.pages(L.GDT_GPA_BASE, gdt[:24], mask)         # null, code 0x08, data 0x10 (no TSS, as OpenVMM)
    b.pages(L.MISC_PAGES_GPA_BASE, bytes(L.MISC_PAGES * 4096), mask)
    info = struct.pack("<IIQIIIIIIIIIIIIII", L.PARAM_BLOCK_PAGES, 0, L.NO_VP_CONTEXT_PAGE,
                       L.PARAM_LOADER_BLOCK_PAGE, L.PARAM_COMMAND_LINE_PAGE, 1, L.PARAM_MEMORY_MAP_PAGE,
                       L.PARAM_TABLE_PAGES, L.PARAM_MADT_PAGE, L.PARAM_TABLE_PAGES, L.PARAM_SRAT_PAGE,
                       L.PARAM_TABLE_PAGES, 0, L.PARAM_UEFI_MEMORY_MAP_PAGE, L.PARAM_TABLE_PAGES, 0, 0)
    b.pages(base, info, mask)
    b.pages(base + L.PARAM_UEFI_MEMORY_MAP_PAGE * 4096, bytes(L.PARAM_TABLE_PAGES * 4096), mask,
            flags=PageDataFlags.UNMEASURED)
    return b.build()


def _context(regs: dict[str, int], native: bool) -> bytes:
    _, segs = flat_gdt()
    cs, ds = segs["cs"], segs["ds"]
    if native:
        f = {k: v for k, v in regs.items()}
        f.update(code_selector=cs.selector, code_base=0, code_limit=cs.limit, code_attributes=cs.attributes,
                 data_selector=ds.selector, data_base=0, data_limit=ds.limit, data_attributes=ds.attributes,
                 gdtr_base=L.GDT_GPA_BASE, gdtr_limit=0x17, rflags=0x2)
        return build_native_context(**f)
    out = [VbsRegister(0, "gdtr", vbs_table(L.GDT_GPA_BASE, 0x17))]
    for n in ("ds", "es", "fs", "gs", "ss"):
        out.append(VbsRegister(0, n, vbs_segment(ds.selector, 0, ds.limit, ds.attributes)))
    out.append(VbsRegister(0, "cs", vbs_segment(cs.selector, 0, cs.limit, cs.attributes)))
    val = lambda v: v.to_bytes(16, "little")  # noqa: E731
    order = ["r12", "cr0", "cr3", "cr4", "efer"]
    out += [VbsRegister(0, n, val(regs[n])) for n in order if n in regs]
    out.append(VbsRegister(0, "pat", val(L.PAT)))
    out += [VbsRegister(0, n, val(regs[n])) for n in ("rbp", "rip", "r8", "r9", "r10", "r11")]
    out.append(VbsRegister(0, "mtrr_def_type", val(L.MTRR_DEF_TYPE)))
    out.append(VbsRegister(0, "mtrr_fix0", val(L.MTRR_FIX_WB_UC)))
    out.append(VbsRegister(0, "mtrr_fix1", val(L.MTRR_FIX_WB_UC)))
    return build_vbs_context(out)

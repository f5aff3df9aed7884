"""Package a flat 64-bit code image as an IGVM file: what a loader author needs to make test payloads.

Layout (all below 1 MiB except the image): GDT at 0x1000, identity page tables (4 GiB, 2 MiB pages) at
0x9000, stack top at 0x80000, the image at its link address (default 0x100000), and one parameter area per
requested usage at the GPA the caller picks. The BSP starts in long mode at the image's entry.
"""

from __future__ import annotations

from ..record import record

from ..x86 import flat_gdt, identity_page_tables, long_mode_state
from .builder import IgvmBuilder
from .constants import HeaderType, PAGE_SIZE, Platform
from .vpcontext import VbsRegister, build_native_context, build_vbs_context, vbs_segment, vbs_table

GDT_GPA = 0x1000
PAGE_TABLES_GPA = 0x9000
STACK_TOP = 0x80000


@record(frozen=True)
class ParamSpec:
    """One parameter area: `usage` written at offset 0 of a `size`-byte area inserted at `gpa`."""
    usage: HeaderType
    gpa: int
    size: int = PAGE_SIZE


def _vp_state(entry: int, regs: dict[str, int] | None):
    vp = long_mode_state(entry, PAGE_TABLES_GPA, GDT_GPA, stack=STACK_TOP)
    vp.regs.update(regs or {})
    return vp


def native_context_for(entry: int, regs: dict[str, int] | None = None) -> bytes:
    """The 4 KiB native VP context page for a long-mode start at `entry` with the flat GDT."""
    vp = _vp_state(entry, regs)
    cs, ds = vp.segments["cs"], vp.segments["ds"]
    fields = dict(vp.regs)
    fields.update(code_selector=cs.selector, code_base=cs.base, code_limit=cs.limit, code_attributes=cs.attributes,
                  data_selector=ds.selector, data_base=ds.base, data_limit=ds.limit, data_attributes=ds.attributes,
                  gdtr_base=vp.gdtr[0], gdtr_limit=vp.gdtr[1], idtr_base=0, idtr_limit=0,
                  cr0=vp.cr0, cr3=vp.cr3, cr4=vp.cr4, efer=vp.efer)
    return build_native_context(**fields)


def vbs_context_for(entry: int, regs: dict[str, int] | None = None, vtl: int = 0) -> bytes:
    """A VBS register list (VTL `vtl`) for the same long-mode start."""
    vp = _vp_state(entry, regs)
    out = [VbsRegister(vtl, n, vbs_segment(s.selector, s.base, s.limit, s.attributes))
           for n, s in vp.segments.items()]
    out.append(VbsRegister(vtl, "gdtr", vbs_table(*vp.gdtr)))
    out.append(VbsRegister(vtl, "idtr", vbs_table(0, 0)))
    for n in ("cr0", "cr3", "cr4", "efer"):
        out.append(VbsRegister(vtl, n, getattr(vp, n).to_bytes(16, "little")))
    for n, v in vp.regs.items():
        out.append(VbsRegister(vtl, n, v.to_bytes(16, "little")))
    return build_vbs_context(out)


def pack_flat_image(image: bytes, load_addr: int = 0x100000, entry: int | None = None, *,
                    platform: Platform = Platform.NATIVE, version: int | None = None,
                    params: tuple[ParamSpec, ...] = (), regs: dict[str, int] | None = None,
                    required_memory: tuple[tuple[int, int], ...] = ()) -> bytes:
    """An IGVM file (NATIVE v2 by default, or VSM_ISOLATION v1) that runs `image` as a 64-bit guest."""
    if platform not in (Platform.NATIVE, Platform.VSM_ISOLATION):
        raise ValueError("pack_flat_image makes NATIVE or VSM_ISOLATION files")
    if version is None:
        version = 2 if platform == Platform.NATIVE else 1
    b = IgvmBuilder(version=version)
    mask = b.platform(platform)
    gdt, _ = flat_gdt()
    b.pages(GDT_GPA, gdt, mask)
    b.pages(PAGE_TABLES_GPA, identity_page_tables(PAGE_TABLES_GPA), mask)
    b.pages(load_addr, image, mask)
    for p in params:
        b.parameter(p.usage, p.gpa, mask, p.size)
    for gpa, size in required_memory:
        from .model import RequiredMemory
        b.add(RequiredMemory(gpa, mask, size))
    from .model import VpContext
    start = load_addr if entry is None else entry
    ctx = native_context_for(start, regs) if platform == Platform.NATIVE else vbs_context_for(start, regs)
    b.add(VpContext(0, mask, 0, ctx))
    return b.build()

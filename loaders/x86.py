"""x86-64 boot structures every loader needs: identity page tables, a flat GDT, long-mode register state."""

from __future__ import annotations

import struct

from .plan import Segment, VpState

CR0_PE, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 1 << 4, 1 << 5, 1 << 16, 1 << 31
CR4_PAE = 1 << 5
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11
MSR_PAT, MSR_MTRR_DEF_TYPE = 0x277, 0x2FF      # Intel SDM vol. 4, table 2-2
MTRR_DEF_TYPE_ENABLE = 1 << 11                 # IA32_MTRR_DEF_TYPE.E
FOUR_GIB = 1 << 32                             # the reset vector's page ends here; firmware windows end here

# Flat segments in the 16-bit attribute form (type | S | DPL | P | AVL | L | DB | G).
CODE64 = 0xA09B   # execute/read, accessed, present, L, G
DATA = 0xC093     # read/write, accessed, present, DB, G
CODE32 = 0xC09B
TSS64 = 0x008B    # busy 64-bit TSS


def gdt_entry(base: int, limit: int, attributes: int) -> int:
    """Pack one 8-byte descriptor from base, limit and the 16-bit attribute form."""
    return ((limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | ((attributes & 0xFF) << 40)
            | (((limit >> 16) & 0xF) << 48) | (((attributes >> 12) & 0xF) << 52) | (((base >> 24) & 0xFF) << 56))


def flat_gdt() -> tuple[bytes, dict[str, Segment]]:
    """A 4-entry GDT (null, 64-bit code 0x08, data 0x10, TSS 0x18) and the segments that match it."""
    cs = Segment(0x08, 0, 0xFFFFFFFF, CODE64)
    ds = Segment(0x10, 0, 0xFFFFFFFF, DATA)
    tr = Segment(0x18, 0, 0xFFFFF, TSS64)
    raw = struct.pack("<4Q", 0, gdt_entry(0, 0xFFFFF, CODE64), gdt_entry(0, 0xFFFFF, DATA), gdt_entry(0, 0xFFFFF, TSS64))
    segs = {"cs": cs, "ds": ds, "es": ds, "fs": ds, "gs": ds, "ss": ds, "tr": tr}
    return raw, segs


def identity_page_tables(base: int, gib: int = 4) -> bytes:
    """PML4 + PDPT + `gib` page directories at `base` identity-mapping the first `gib` GiB with 2 MiB pages."""
    if base & 0xFFF or not 1 <= gib <= 512:
        raise ValueError("page tables need a page-aligned base and 1..512 GiB")
    pml4 = struct.pack("<Q", (base + 0x1000) | 0x3).ljust(0x1000, b"\0")
    pdpt = b"".join(struct.pack("<Q", (base + 0x2000 + i * 0x1000) | 0x3) for i in range(gib)).ljust(0x1000, b"\0")
    pds = b"".join(struct.pack("<Q", (i << 21) | 0x83) for i in range(512 * gib))
    return pml4 + pdpt + pds


def page_table_size(gib: int = 4) -> int:
    return 0x2000 + gib * 0x1000


def long_mode_state(entry: int, page_tables: int, gdt_base: int, stack: int = 0) -> VpState:
    """Registers for entering 64-bit code at `entry` with the flat GDT at gdt_base and paging at page_tables."""
    _, segs = flat_gdt()
    regs = {"rip": entry, "rflags": 0x2}
    if stack:
        regs["rsp"] = stack
    return VpState(regs=regs, segments=segs, gdtr=(gdt_base, 31), idtr=(0, 0),
                   cr0=CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG, cr3=page_tables, cr4=CR4_PAE,
                   efer=EFER_SCE | EFER_LME | EFER_LMA)


def real_mode_state(entry: int) -> VpState:
    """Registers for entering 16-bit real-mode code at a linear address below 1 MiB (CS:IP = entry>>4 : entry&15)."""
    if not 0 <= entry < 0x100000:
        raise ValueError(f"real-mode entry {entry:#x} is not below 1 MiB")
    seg = entry >> 4
    cs = Segment(seg, seg << 4, 0xFFFF, 0x009B)
    data = Segment(0, 0, 0xFFFF, 0x0093)
    return VpState(regs={"rip": entry & 0xF, "rflags": 0x2, "rsp": 0x7000},
                   segments={"cs": cs, "ds": data, "es": data, "fs": data, "gs": data, "ss": data},
                   cr0=CR0_ET)

"""x86-64 boot structures every loader needs: identity page tables, a flat GDT, long-mode register state, and
the one walk of 4- and 5-level page tables that the loaders and the VMM share."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from .plan import Segment, VpState

CR0_PE, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 1 << 4, 1 << 5, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_LA57 = 1 << 4, 1 << 5, 1 << 12
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11
MSR_PAT, MSR_MTRR_DEF_TYPE = 0x277, 0x2FF      # Intel SDM vol. 4, table 2-2
MTRR_DEF_TYPE_ENABLE = 1 << 11                 # IA32_MTRR_DEF_TYPE.E
FOUR_GIB = 1 << 32                             # the reset vector's page ends here; firmware windows end here

# Flat segments in the 16-bit attribute form (type | S | DPL | P | AVL | L | DB | G).
CODE64 = 0xA09B   # execute/read, accessed, present, L, G
DATA = 0xC093     # read/write, accessed, present, DB, G
CODE32 = 0xC09B
TSS64 = 0x008B    # busy 64-bit TSS

# Page-table entries of 4-level and 5-level paging: Intel SDM vol. 3A, section 4.5 ("4-Level Paging and 5-Level
# Paging"), Tables 4-14 to 4-20. P, R/W, U/S and XD mean the same at every level; PS (bit 7) makes a PDPTE (level
# 3) map a 1 GiB page and a PDE (level 2) a 2 MiB page, is reserved in a PML5E/PML4E and is PAT in a PTE.
PTE_P, PTE_RW, PTE_US, PTE_A, PTE_D, PTE_PS = 1, 1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 7
PTE_XD = 1 << 63
PTE_ADDR = ((1 << 52) - 1) & ~0xFFF            # bits 12-51: the next table, in an entry that references one
PAGE_TABLE = struct.Struct("<512Q")            # one 4 KiB table of 512 entries, at every level


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
    table = PTE_P | PTE_RW
    pml4 = struct.pack("<Q", (base + 0x1000) | table).ljust(0x1000, b"\0")
    pdpt = b"".join(struct.pack("<Q", (base + 0x2000 + i * 0x1000) | table) for i in range(gib)).ljust(0x1000, b"\0")
    pds = b"".join(struct.pack("<Q", (i << 21) | table | PTE_PS) for i in range(512 * gib))
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


def walk_page_tables(read_table: Callable[[int], bytes | bytearray | memoryview | None], cr3: int, levels: int, *,
                     next_mask: int = -1, lowest: int = 1) -> Iterator[tuple[int, int, int, int]]:
    """(table GPA, level, index, entry) of every present entry of the tables a translation from `cr3` can reach.

    Both the plan of an SEV-SNP file (which rewrites the C-bit out of the file's tables) and the launch (which splits
    1 GiB pages where KVM has none) must see exactly the entries the CPU could use, so they share this one walk.
    `levels` is 4, or 5 with CR4.LA57 (SDM 4.5.1); level 1 is the page table. An entry is followed to the table at
    its address bits, ANDed with `next_mask` (an SEV-SNP C-bit is no address bit to a plain guest), unless it maps
    a page: always at level 1, with PS at levels 3 and 2. PS at levels 5 and 4 is reserved, and the entry is still
    followed (the callers want every table the image names; the CPU faults on such an entry instead). Tables of
    levels below `lowest` are not read. Each (table, level) is read once, so shared tables and cycles (a PML4 that
    references itself, as recursive mappings do) end; a table reached at two levels is read at both, because a
    translation can use its entries either way. read_table(gpa) returns the 4 KiB table (a shorter one reads as
    zero-filled) or None where there is none, which skips it: the CPU would fault only when a translation uses it.
    Entries of a table are given in index order, the tables depth-first, the last reference first."""
    if levels not in (4, 5) or not 1 <= lowest <= levels:
        raise ValueError(f"a walk of {levels} levels down to level {lowest}")
    todo = [(cr3 & PTE_ADDR, levels)]
    seen: set[tuple[int, int]] = set()
    while todo:
        gpa, level = todo.pop()
        if (gpa, level) in seen:
            continue
        seen.add((gpa, level))
        page = read_table(gpa)
        if page is None:
            continue
        if len(page) < PAGE_TABLE.size:
            page = bytes(page).ljust(PAGE_TABLE.size, b"\0")
        follow = level > lowest
        for i, e in enumerate(PAGE_TABLE.unpack_from(page)):
            if not e & PTE_P:
                continue
            yield gpa, level, i, e
            if follow and (level > 3 or not e & PTE_PS):
                todo.append((e & PTE_ADDR & next_mask, level - 1))

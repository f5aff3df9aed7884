"""1 GiB guest pages on a KVM that offers none: the VMM splits them into 2 MiB pages before the guest runs.

IGVM files made for SEV-SNP hardware, igvm-tooling's `-boot_mode x64` among them, start the guest in long mode on
page tables that map memory with 1 GiB pages (a PDPTE with PS set): every SNP-capable CPU has them. A KVM whose
CPUID lacks pdpe1gb (nested KVM with shadow paging often does) treats PS in a PDPTE as a reserved bit, so the
first instruction fetch faults and the guest triple-faults before it runs anything.

pyvmm rewrites each such PDPTE, in guest memory, to point at a page directory of 512 2 MiB pages that map the same
GiB with the same attributes. Intel SDM vol. 3A, 4.5 (4-level paging), Tables 4-15 to 4-17: a PDPTE that maps a
1 GiB page and a PDE that maps a 2 MiB page share bits 0-12 (P, R/W, U/S, PWT, PCD, A, D, PS, G, PAT) and bits
52-63 (protection key, XD); only the address field differs (bits 30-51 against 21-51). A PDPTE that references a
page directory keeps P, R/W, U/S, PWT, PCD, A and XD; access rights combine by AND (R/W, U/S) and OR (XD) across
levels, so repeating them changes nothing. The page directories live in a memory slot of their own, above the
guest's RAM and 4 GiB, that no memory map given to the guest shows: nothing the guest allocates can overwrite them
before it loads page tables of its own.

What a guest can tell: reading its own PDPT shows a pointer where it wrote a 1 GiB page, and accessed/dirty bits
land in the new page directories. A guest that walks its own boot page tables would notice; Linux builds new ones.
"""

from __future__ import annotations

from struct import Struct

from kvm.uapi import PAGE_SIZE as PAGE
from loaders.x86 import CR0_PG, CR4_LA57, EFER_LMA, PAGE_TABLE, PTE_PS, PTE_XD, walk_page_tables

ENTRIES = 512
GIB, TWO_MIB = 1 << 30, 1 << 21
MAX_DIRECTORIES = 1024          # 4 MiB of page directories: 1 TiB of distinct 1 GiB pages, more than any guest maps

_ENTRY = Struct("<Q")
_GIB_ADDR = ((1 << 52) - 1) & ~(GIB - 1)       # bits 30-51: a 1 GiB page's frame
_GIB_RESERVED = (GIB - 1) & ~0x1FFF            # bits 13-29: must be 0 in a PDPTE that maps 1 GiB
_NONLEAF_KEEP = 0x3F | PTE_XD                  # P, R/W, U/S, PWT, PCD, A, XD


def gib_entries(read_page, cr3: int, cr4: int) -> list[tuple[int, int]]:
    """(GPA, value) of every present PDPTE that maps a 1 GiB page, under the 4- or 5-level tables at `cr3`.

    read_page(gpa) gives the 4 KiB page at gpa, or None where there is no memory (that table is skipped, as the
    CPU would fault on it when used, not before). The walk stops at the PDPTs: nothing below them maps 1 GiB. An
    entry with reserved bits set is left alone: the CPU faults on it whether it is split or not."""
    levels = 5 if cr4 & CR4_LA57 else 4
    return [(gpa + 8 * i, e) for gpa, level, i, e in walk_page_tables(read_page, cr3, levels, lowest=3)
            if level == 3 and e & PTE_PS and not e & _GIB_RESERVED]


def split_directory(pdpte: int) -> bytes:
    """The page directory of 512 2 MiB pages that map what the 1 GiB PDPTE `pdpte` maps, with its attributes."""
    frame, attrs = pdpte & _GIB_ADDR, pdpte & ~_GIB_ADDR
    return PAGE_TABLE.pack(*(attrs | (frame + j * TWO_MIB) for j in range(ENTRIES)))


def pointer_entry(pdpte: int, directory_gpa: int) -> int:
    """The PDPTE that references the page directory at `directory_gpa` in place of the 1 GiB page `pdpte`."""
    return directory_gpa | (pdpte & _NONLEAF_KEEP)


def needs_split(vp) -> bool:
    """Whether a VP starts in IA-32e mode with paging (the only mode with 1 GiB pages); None: the reset value."""
    return bool((vp.cr0 or 0) & CR0_PG and (vp.efer or 0) & EFER_LMA)


def plan_split(entries: list[tuple[int, int]], base: int) -> tuple[bytes, list[tuple[int, int]], int]:
    """Page directories to place at `base` (one per distinct 1 GiB page, shared by entries that map the same GiB
    the same way), the (GPA, new value) writes for the PDPTEs, and how many entries were left alone because
    MAX_DIRECTORIES was reached."""
    index: dict[int, int] = {}
    writes: list[tuple[int, int]] = []
    left = 0
    for gpa, e in entries:
        i = index.get(e)
        if i is None:
            if len(index) >= MAX_DIRECTORIES:
                left += 1
                continue
            i = index[e] = len(index)
        writes.append((gpa, pointer_entry(e, base + i * PAGE)))
    return b"".join(split_directory(e) for e in index), writes, left


def pack_entry(value: int) -> bytes:
    return _ENTRY.pack(value)

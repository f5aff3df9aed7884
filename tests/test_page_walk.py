"""The one walk of 4- and 5-level page tables (loaders.x86.walk_page_tables) that the SEV-SNP plan (C-bit removal)
and the launch (1 GiB page split) share. Its oracle translates every virtual address the random tables can map,
one at a time, the way Intel SDM vol. 3A section 4.5 describes the MMU: the walk must give exactly the entries those
translations use, and read exactly the tables they read, each (table, level) once, even where tables form cycles."""

from __future__ import annotations

import struct
from collections import Counter
from itertools import product

import pytest
from hypothesis import given, settings, strategies as st

from loaders.igvm import model as m
from loaders.igvm.cc_launch import _walk_page_tables
from loaders.x86 import walk_page_tables

P, RW, PS = 1, 2, 0x80
C_BIT = 1 << 51
ADDR = ((1 << 52) - 1) & ~0xFFF
INDICES = (0, 1, 2, 511)                       # the only indices the random tables fill in
GPAS = tuple(0x1000 * k for k in range(1, 7))  # tables reference each other (and themselves): cycles arise
MISSING = 0x7000                               # referenced, never present: the walk skips it


def translate(tables: dict[int, list[int]], cr3: int, levels: int, va: int, mask: int, lowest: int):
    """The tables read (table GPA, level) and the entries used (GPA, level, index, value) translating `va`.

    SDM 4.5.4: bits 47:39 (4-level) or 56:48 (5-level) index the top table, each level below takes the next 9
    bits down to bits 20:12; a clear P stops the walk (#PF); PS makes a PDPTE (1 GiB) or PDE (2 MiB) the leaf; a
    PTE is always one. Reading stops above `lowest`, as the walk is asked to. The walk under test does not check
    reserved bits (PS in a PML4E included) and neither does this."""
    read, used = [], []
    table = cr3 & ADDR
    for level in range(levels, lowest - 1, -1):
        read.append((table, level))
        if table not in tables:
            break
        index = (va >> (12 + 9 * (level - 1))) & 511
        e = tables[table][index]
        if not e & P:
            break
        used.append((table, level, index, e))
        if level == 1 or level in (2, 3) and e & PS:
            break
        table = e & ADDR & mask
    return read, used


def every_va(levels: int):
    """Every canonical address whose table indices are all in INDICES (page offset 0)."""
    top = 12 + 9 * levels
    for idx in product(INDICES, repeat=levels):
        va = sum(i << (12 + 9 * (levels - 1 - k)) for k, i in enumerate(idx))
        if va >> (top - 1):
            va |= ((1 << 64) - 1) & ~((1 << top) - 1)        # sign-extend bit 47 (or 56)
        yield va


entry = st.builds(lambda gpa, present, ps, c, low: gpa | (P if present else 0) | (PS if ps else 0)
                  | (C_BIT if c else 0) | low,
                  st.sampled_from(GPAS + (MISSING,)), st.booleans() | st.just(True), st.booleans(),
                  st.booleans(), st.integers(0, 0x7F).map(lambda v: v & ~P & ~PS & ~0x1))
table = st.dictionaries(st.sampled_from(INDICES), entry, max_size=len(INDICES)).map(
    lambda d: [d.get(i, 0) for i in range(512)])


@settings(max_examples=150, deadline=None)
@given(tables=st.dictionaries(st.sampled_from(GPAS), table, min_size=1), cr3=st.sampled_from(GPAS),
       levels=st.sampled_from((4, 5)), strip_c=st.booleans(), lowest=st.integers(1, 5))
def test_the_walk_gives_exactly_the_entries_translations_use(tables, cr3, levels, strip_c, lowest):
    lowest = min(lowest, levels)
    mask = ~C_BIT if strip_c else -1
    want_read, want_used = set(), set()
    for va in every_va(levels):
        read, used = translate(tables, cr3, levels, va, mask, lowest)
        want_read.update(read)
        want_used.update(used)
    reads = []

    def read_table(gpa: int):
        reads.append(gpa)
        return struct.pack("<512Q", *tables[gpa]) if gpa in tables else None
    got = list(walk_page_tables(read_table, cr3, levels, next_mask=mask, lowest=lowest))
    assert set(got) == want_used
    assert len(got) == len(want_used)                                    # no entry twice
    assert Counter(reads) == Counter(gpa for gpa, _ in want_read)        # each (table, level) read once, no other


def test_leaves_and_the_reserved_ps_of_a_pml4e():
    pml4 = [0] * 512
    pml4[0] = 0x2000 | P | PS                  # PS reserved here: still a reference to a PDPT
    pdpt = [0] * 512
    pdpt[0] = 0x3000 | P | PS                  # 1 GiB page: 0x3000 is no table
    pdpt[1] = 0x4000 | P                       # a page directory
    pd = [0] * 512
    pd[0] = 0x3000 | P | PS                    # 2 MiB page
    pd[1] = 0x5000 | P                         # a page table
    pt = [0] * 512
    pt[0] = 0x3000 | P                         # 4 KiB page
    pages = {0x1000: pml4, 0x2000: pdpt, 0x4000: pd, 0x5000: pt, 0x3000: [0x1000 | P] * 512}
    got = list(walk_page_tables(lambda g: struct.pack("<512Q", *pages[g]) if g in pages else None, 0x1000, 4))
    assert [(g, lvl, i) for g, lvl, i, _ in got] == [
        (0x1000, 4, 0), (0x2000, 3, 0), (0x2000, 3, 1), (0x4000, 2, 0), (0x4000, 2, 1), (0x5000, 1, 0)]
    # a short table reads as zero-filled; levels other than 4 and 5 are refused
    assert list(walk_page_tables(lambda g: struct.pack("<Q", P | 0x9000), 0, 4, lowest=4)) == [(0, 4, 0, P | 0x9000)]
    with pytest.raises(ValueError):
        list(walk_page_tables(lambda g: None, 0, 3))


def test_the_snp_plan_clears_the_c_bit_under_a_table_reached_at_two_levels():
    """0x3000 is a page table under PD 0x7000 and a page directory under PDPT 0x6000; the walk reaches it as a page
    table first. A translation through PML4[0] -> 0x6000 -> 0x3000 -> 0x4000 reads 0x4000 as a page table, so its
    entry must lose the C-bit too (a plain guest's CPU faults on it as a reserved bit)."""
    def tab(*entries: int) -> bytes:
        return struct.pack("<512Q", *entries, *[0] * (512 - len(entries)))
    tables = {
        0x1000: tab(0x6000 | P | C_BIT, 0x2000 | P | C_BIT, 0x8000 | P),   # PML4
        0x2000: tab(0x7000 | P | C_BIT),                                    # PDPT -> PD 0x7000
        0x7000: tab(0x3000 | P | C_BIT),                                    # PD -> 0x3000 as a page table
        0x6000: tab(0x3000 | P | C_BIT),                                    # PDPT -> 0x3000 as a page directory
        0x3000: tab(0x4000 | P | C_BIT),
        0x4000: tab(0x5000 | P | C_BIT),                                    # a page table only under 0x6000
        0x8000: tab(0x9000 | P | RW),                                       # a PDPT without the C-bit
    }
    pages, directives = {}, []
    for gpa, data in tables.items():
        pages[gpa] = len(directives)
        directives.append(m.PageData(gpa, 1, 0, 0, data, 0))
    notes: list[str] = []
    _walk_page_tables(pages, directives, 0x1000, True, notes)
    out = {d.gpa: struct.unpack("<512Q", d.data) for d in directives}
    assert out[0x4000][0] == 0x5000 | P
    assert all(not e & C_BIT for t in out.values() for e in t)
    assert directives[pages[0x8000]].data is tables[0x8000]              # an unchanged page is not rewritten
    assert notes == ["C-bit cleared in 6 page-table page(s) under CR3"]
    # without `strip` nothing changes, and the 1 GiB page note comes from a PDPTE with PS only
    directives = [m.PageData(gpa, 1, 0, 0, data, 0) for gpa, data in tables.items()]
    notes = []
    _walk_page_tables(pages, directives, 0x1000, False, notes)
    assert notes == [] and [d.data for d in directives] == list(tables.values())
    directives[pages[0x8000]] = m.PageData(0x8000, 1, 0, 0, tab(0, 0x40000000 | P | PS), 0)
    _walk_page_tables(pages, directives, 0x1000, False, notes)
    assert notes == ["the page tables map 1 GiB pages (split into 2 MiB pages at launch where KVM offers none)"]

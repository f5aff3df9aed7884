"""1 GiB pages (PDPTE.PS) in a guest's starting page tables, on any KVM: vmm/gib_split.py splits them into 2 MiB
pages where KVM offers none (CPUID pdpe1gb), as nested KVM with shadow paging often does. The guest proves the
split maps what the 1 GiB pages mapped; igvm-tooling's x64 files (tests/test_snp_launch.py) need it too."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from loaders.flat import PAGE_TABLES_GPA, flat_plan
from loaders.plan import MemoryWrite
from vmm.gib_split import MAX_DIRECTORIES, gib_entries, plan_split, split_directory

GIB = 1 << 30
P, RW, PWT, PCD, PS = 1, 2, 8, 16, 0x80
OK, BAD = 0x21, 0x35


def gib_tables(base: int) -> bytes:
    """PML4 at base, PDPT A at base+4K (GiB 0-3 identity, GiB 0 again at entry 4), PDPT B at base+8K (GiB 0 at
    entries 0 and 1, the second read-only and uncached)."""
    pml4 = [0] * 512
    pml4[0] = (base + 0x1000) | P | RW
    pml4[1] = (base + 0x2000) | P | RW
    a = [0] * 512
    for i in range(4):
        a[i] = i * GIB | P | RW | PS
    a[4] = 0 | P | RW | PS
    b = [0] * 512
    b[0] = 0 | P | RW | PS
    b[1] = 0 | P | PS | PCD | PWT
    return b"".join(struct.pack("<512Q", *t) for t in (pml4, a, b))


def run_gib_guest(split: bool | None):
    from tests.guests.build import build
    from vmm.machine import Machine, MachineConfig
    plan = flat_plan(build("gib_pages.S"))
    plan.writes = [w if w.gpa != PAGE_TABLES_GPA else MemoryWrite(w.gpa, gib_tables(w.gpa), "page tables")
                   for w in plan.writes]
    with Machine(MachineConfig(memory=64 << 20, split_gib_pages=split)) as m:
        m.load(plan)
        return m.run(20), m


@pytest.mark.parametrize("split", [True, None], ids=["split", "as-kvm-allows"])
def test_a_guest_on_1gib_pages_reads_its_memory_through_every_alias(kvm_ok, toolchain_ok, split):
    result, _ = run_gib_guest(split)
    assert result.status == OK << 1 | 1, result


def test_without_the_split_a_kvm_lacking_1gib_pages_triple_faults(kvm_ok, toolchain_ok):
    from kvm import Kvm
    if any(e.function == 0x80000001 and e.edx >> 26 & 1 for e in Kvm().supported_cpuid()):
        pytest.skip("this KVM has 1 GiB pages: the guest runs without the split (the test above)")
    result, _ = run_gib_guest(False)
    assert result.status == 0 and "triple fault" in result.message


def _tables(pages: dict[int, bytes]):
    return lambda gpa: pages.get(gpa)


def test_the_walk_finds_each_1gib_entry_once_under_shared_tables():
    t = gib_tables(0x9000)
    pages = {0x9000 + i * 0x1000: t[i * 0x1000:(i + 1) * 0x1000] for i in range(3)}
    found = gib_entries(_tables(pages), 0x9000, 0)
    assert sorted(g for g, _ in found) == [0xA000 + 8 * i for i in range(5)] + [0xB000, 0xB008]
    # a table outside memory is skipped, not an error; entries that are not present are ignored
    assert gib_entries(_tables({}), 0x9000, 0) == []
    # LA57: one more level above
    pml5 = struct.pack("<512Q", 0x9000 | P, *[0] * 511)
    assert len(gib_entries(_tables({**pages, 0x20000: pml5}), 0x20000, 1 << 12)) == 7


def test_entries_with_reserved_bits_are_left_as_the_cpu_would_fault_on_them():
    bad = struct.pack("<512Q", 0x40000000 | 1 << 20 | P | PS, *[0] * 511)     # bit 20 set: reserved in a 1 GiB PDPTE
    pml4 = struct.pack("<512Q", 0x1000 | P, *[0] * 511)
    assert gib_entries(_tables({0: pml4, 0x1000: bad}), 0, 0) == []


def _translate_gib(e: int, offset: int) -> tuple[int, int]:
    """Physical address and the leaf attribute bits (0-12, 52-63) of a 1 GiB leaf, from the SDM's Table 4-15."""
    return (e & ((1 << 52) - 1) & ~(GIB - 1)) + offset, e & (0x1FFF | 0xFFF << 52)


def _translate_split(pdpte_new: int, directory: bytes, offset: int) -> tuple[int, int, int]:
    """Physical address, leaf attributes and the PDPTE's access bits through a PDPTE -> PDE (Tables 4-16, 4-17)."""
    pde = struct.unpack_from("<Q", directory, (offset >> 21) * 8)[0]
    assert pde & PS and pde & P
    phys = (pde & ((1 << 52) - 1) & ~((1 << 21) - 1)) + (offset & ((1 << 21) - 1))
    return phys, pde & (0x1FFF | 0xFFF << 52), pdpte_new


attrs = st.integers(0, 0x1FFF).map(lambda v: v | P | PS) | st.just(P | PS)
high = st.integers(0, 0xFFF).map(lambda v: v << 52)


@given(frame=st.integers(0, (1 << 22) - 1), low=attrs, hi=high, offset=st.integers(0, GIB - 1))
def test_a_split_maps_every_byte_of_the_gib_with_the_same_attributes(frame, low, hi, offset):
    e = frame << 30 | low | hi
    directories, writes, left = plan_split([(0x5000, e)], 0x1_0000_0000)
    assert left == 0 and len(directories) == 4096 and writes[0][0] == 0x5000
    new = writes[0][1]
    phys, leaf, pointer = _translate_split(new, directories, offset)
    assert (phys, leaf) == _translate_gib(e, offset)
    assert pointer & ~0x3F & ((1 << 52) - 1) == 0x1_0000_0000 and not pointer & PS
    # the access rights on the way (R/W, U/S, XD) are the leaf's own, so the combined rights do not change
    assert pointer & 0x7 == e & 0x7 and pointer >> 63 == e >> 63


def test_entries_mapping_the_same_gib_alike_share_a_directory_and_the_count_is_bounded():
    e = GIB | P | RW | PS
    directories, writes, _ = plan_split([(0x1000, e), (0x2000, e), (0x3000, 2 * GIB | P | PS)], 0x200000)
    assert len(directories) == 2 * 4096 and writes[0][1] == writes[1][1] != writes[2][1]
    assert split_directory(e)[:8] == struct.pack("<Q", e)           # the first 2 MiB page starts the GiB
    many = [(8 * i, i * GIB | P | PS) for i in range(MAX_DIRECTORIES + 3)]
    directories, writes, left = plan_split(many, 0)
    assert left == 3 and len(writes) == MAX_DIRECTORIES and len(directories) == MAX_DIRECTORIES * 4096

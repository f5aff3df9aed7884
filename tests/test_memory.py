"""Guest RAM: the layout around the MMIO hole, and bounds checks that never let an access reach host memory."""

import mmap
import os

import pytest
from hypothesis import given, settings, strategies as st

from vmm.memory import GiB, GuestMemory, GuestMemoryError, ram_layout


def test_layout_below_and_above_the_hole():
    assert ram_layout(256 << 20) == [(0, 256 << 20)]
    assert ram_layout(3 * GiB) == [(0, 3 * GiB)]
    assert ram_layout(5 * GiB) == [(0, 3 * GiB), (4 * GiB, 2 * GiB)]
    with pytest.raises(ValueError):
        ram_layout(0x1001)


def test_read_write_zero_and_view():
    with GuestMemory(4 << 20) as m:
        m.write(0x1000, b"hello")
        assert m.read(0x1000, 5) == b"hello"
        m.view(0x2000, 4)[:] = b"abcd"
        assert m.read(0x2000, 4) == b"abcd"
        m.zero(0x1000, 0x1000)
        assert m.read(0x1000, 5) == bytes(5)
        m.write((4 << 20) - 3, b"end")
        assert m.read((4 << 20) - 3, 3) == b"end"


def _rss_kib() -> int:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])


def test_a_mapped_file_is_copied_whole_and_its_pages_dropped(tmp_path):
    """read_file(map_big=True) maps a big file; writing a slice of it copies every byte (unaligned ends too) and
    leaves the file's pages out of this process's resident memory."""
    from vmm.files import read_file
    data = os.urandom(12 << 20)
    path = tmp_path / "big"
    path.write_bytes(data)
    mapped = read_file(str(path), map_big=True)
    assert isinstance(mapped, mmap.mmap) and isinstance(read_file(str(path)), bytes)
    view = memoryview(mapped)
    with GuestMemory(32 << 20) as m:
        before = _rss_kib()
        m.write(0x100003, view[5:(12 << 20) - 7])
        grown = _rss_kib() - before
        assert m.read(0x100003, (12 << 20) - 12) == data[5:-7]
    assert grown < (12 << 10) + (6 << 10), grown          # guest RAM (12 MiB) + at most a chunk, not 24 MiB
    view.release()
    mapped.close()


def test_accesses_outside_ram_raise_and_write_nothing():
    with GuestMemory(4 << 20) as m:
        for gpa, n in [((4 << 20) - 2, 4), (4 << 20, 1), (-1, 1), (1 << 64, 1)]:
            with pytest.raises(GuestMemoryError):
                m.write(gpa, b"x" * n)
            with pytest.raises(GuestMemoryError):
                m.read(gpa, n)
        assert m.read((4 << 20) - 2, 2) == b"\0\0"   # the failed write did not write its in-range half


def test_five_gib_spans_the_hole_without_committing_memory():
    with GuestMemory(5 * GiB) as m:
        assert m.ranges() == [(0, 3 * GiB), (4 * GiB, 2 * GiB)]
        m.write(4 * GiB, b"high")
        assert m.read(4 * GiB, 4) == b"high"
        with pytest.raises(GuestMemoryError, match="not inside guest RAM"):
            m.write(3 * GiB + 0x1000, b"hole")
        with pytest.raises(GuestMemoryError):
            m.read(3 * GiB - 2, 4)          # crosses from RAM into the hole


@settings(max_examples=300, deadline=None)
@given(gpa=st.integers(-(1 << 65), 1 << 65), n=st.integers(0, 1 << 24))
def test_any_range_is_either_inside_or_refused(gpa, n):
    size = 8 << 20
    with GuestMemory(size) as m:
        inside = 0 <= gpa and gpa + n <= size
        if inside and n <= 1 << 16:
            m.write(gpa, b"\xaa" * n)
            assert m.read(gpa, n) == b"\xaa" * n
        elif not inside:
            with pytest.raises(GuestMemoryError):
                m.read(gpa, n)

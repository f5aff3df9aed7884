"""The strict IGVM reader's memory: a file of 100,000 headers costs about its own size, not 10 times it.

The reader leaves checked PAGE_DATA headers in the file and makes their records on access (loaders/igvm/directives.py);
these tests pin the bound and that the records made on access are the ones an eager reader would keep."""

from __future__ import annotations

import tracemalloc

import pytest

from loaders.igvm import model as m
from loaders.igvm.builder import IgvmBuilder
from loaders.igvm.constants import HeaderType, PageDataFlags, Platform
from loaders.igvm.reader import read_igvm
from loaders.igvm.writer import write_igvm

MIB = 1 << 20


def many_headers(count: int) -> bytes:
    """A NATIVE IGVM file of `count` PAGE_DATA headers (16 distinct data pages shared among them, one page in
    four a page of zeroes): about 32 bytes of file a header. The last page sits under the reset vector, so the
    file plans (loaders/igvm/load.py) as a NATIVE guest."""
    b = IgvmBuilder()
    mask = b.platform(Platform.NATIVE)
    blobs = [bytes([i + 1]) * 4096 for i in range(16)]
    for i in range(count):
        gpa = i * 4096 if i < count - 1 else 0xFFFFF000
        b.add(m.PageData(gpa, mask, data=None if i % 4 == 3 and i < count - 1 else blobs[i % 16]))
    return b.build()


def test_reader_peak_stays_within_file_size_plus_two_mib(tmp_path):
    path = tmp_path / "many.igvm"
    path.write_bytes(many_headers(100_000))
    tracemalloc.start()
    try:
        data = path.read_bytes()
        f = read_igvm(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(f.directives) == 100_000 and len(f.header_offsets) == 100_001
    assert 3 * MIB < len(data) < 3.2 * MIB
    # The bytes themselves plus 8 bytes a header for the offsets; an eager reader holds about 30 MiB more.
    assert peak < len(data) + 2 * MIB, f"peak {peak / MIB:.1f} MiB for a {len(data) / MIB:.1f} MiB file"
    d = f.directives[-5]
    assert (d.gpa, d.data, d.file_offset) == (99_995 * 4096, None, 0) and f.directives[-1].gpa == 0xFFFFF000
    assert bytes(f.directives[5].data) == bytes([6]) * 4096 and f.directives[5].data.obj is data


def _mixed() -> m.IgvmFile:
    """Pages made on access interleaved with directives the reader keeps as records."""
    b = IgvmBuilder()
    mask = b.platform(Platform.NATIVE)
    b.pages(0x1000, b"\x90" * 4096 + bytes(4096), mask)
    b.parameter(HeaderType.COMMAND_LINE, 0x3000, mask)
    b.add(m.PageData(0x200000, mask, int(PageDataFlags.IS_2MB_PAGE), data=b"\xcc" * (2 << 20)))
    b.pages(0x4000, b"\x01" * 4096, mask, data_type=1)
    b.add(m.RequiredMemory(0x800000, mask, 0x1000))
    b.pages(0x5000, b"\x02" * 4096, mask)
    return b.file()


def test_directives_made_on_access_equal_the_written_ones():
    want = _mixed()
    raw = write_igvm(want)
    f = read_igvm(raw)
    assert f == want and f.directives == want.directives and want.directives == f.directives
    assert hash(f) == hash(want)
    assert list(f.directives) == list(want.directives) == [f.directives[i] for i in range(len(want.directives))]
    assert f.directives[-1] == want.directives[-1] and f.directives[-2:] == want.directives[-2:]
    assert f.directives[::2] == want.directives[::2]
    with pytest.raises(IndexError):
        f.directives[len(want.directives)]
    with pytest.raises(IndexError):
        f.directives[-len(want.directives) - 1]
    big = next(d for d in f.directives if getattr(d, "flags", 0))
    assert len(big.data) == 2 << 20 and big.data.obj is raw
    assert list(f.header_offsets) == sorted(f.header_offsets) and len(f.header_offsets) == 1 + len(f.directives)
    for d in f.directives:              # a page's file_offset names its data in the file
        if m.is_a(d, "PageData") and d.data is not None:
            assert raw[d.file_offset:d.file_offset + len(d.data)] == bytes(d.data)
    assert write_igvm(f) == raw
    assert f.directives != want.directives[:-1] and f.directives != list(want.directives)

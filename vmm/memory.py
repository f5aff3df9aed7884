"""Guest RAM: anonymous host mappings registered as KVM memory slots, with bounds-checked access.

Every access is checked against the RAM ranges first, so a bad GPA from a file or a guest raises
GuestMemoryError instead of touching host memory. Behind that check, each range's host mapping sits between
PROT_NONE guard pages (kvm.mman.HostMapping guard=): a host write that got past it would fault, not corrupt.
"""

from __future__ import annotations

import ctypes
import mmap
from loaders.record import record

from kvm.mman import HostMapping

GiB = 1 << 30
MMIO_HOLE_START = 3 * GiB
MMIO_HOLE_END = 4 * GiB


PAGE = mmap.PAGESIZE
GUARD = 2 << 20          # PROT_NONE bytes kept on each side of every RAM range's host mapping
DROP_CHUNK = 4 << 20     # bytes copied from a mapped file before its pages are dropped from this process


def _file_mapping(data: object) -> tuple[mmap.mmap, int] | None:
    """(the file mapping, offset) when data is a memoryview into a writable private mmap (vmm.files.read_file)."""
    obj = getattr(data, "obj", None)
    if not isinstance(obj, mmap.mmap) or not len(data):
        return None
    try:
        base = ctypes.c_char.from_buffer(obj)
        return obj, ctypes.addressof(ctypes.c_char.from_buffer(data)) - ctypes.addressof(base)
    except TypeError:                       # a read-only mapping: copied like any buffer
        return None
    finally:
        base = None


class GuestMemoryError(ValueError):
    """An access that is not entirely inside guest RAM."""


def ram_layout(size: int) -> list[tuple[int, int]]:
    """RAM ranges for `size` bytes: below the 3-4 GiB MMIO hole, the rest from 4 GiB up."""
    if size <= 0 or size & 0xFFF:
        raise ValueError(f"guest memory size {size:#x} must be a positive multiple of 4 KiB")
    if size <= MMIO_HOLE_START:
        return [(0, size)]
    return [(0, MMIO_HOLE_START), (MMIO_HOLE_END, size - MMIO_HOLE_START)]


@record
class Region:
    gpa: int
    size: int
    mapping: HostMapping

    @property
    def end(self) -> int:
        return self.gpa + self.size


class GuestMemory:
    """All guest RAM. read/write/zero/view take GPAs and raise GuestMemoryError outside RAM."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.untouched = True             # no plan was applied yet: every byte still reads as zero
        self.regions: list[Region] = []
        try:
            for gpa, n in ram_layout(size):
                self.regions.append(Region(gpa, n, HostMapping(n, what="mmap guest RAM", huge=True,
                                                                   guard=GUARD)))
        except BaseException:
            self.close()
            raise

    def add_region(self, gpa: int, size: int, what: str) -> Region:
        """More RAM at a fixed place (e.g. just below 4 GiB for a TDX image's reset vector); it must not overlap."""
        if size <= 0 or (gpa | size) & 0xFFF or any(gpa < r.end and r.gpa < gpa + size for r in self.regions):
            raise GuestMemoryError(f"{what} at {gpa:#x}-{gpa + size:#x} overlaps guest RAM or is not page-aligned")
        region = Region(gpa, size, HostMapping(size, what=f"mmap {what}"))
        self.regions.append(region)
        return region

    def ranges(self) -> list[tuple[int, int]]:
        return [(r.gpa, r.size) for r in self.regions]

    def _find(self, gpa: int, size: int) -> tuple[Region, int]:
        if size < 0 or gpa < 0:
            raise GuestMemoryError(f"invalid guest access at {gpa:#x} size {size:#x}")
        for r in self.regions:
            if r.gpa <= gpa and gpa + size <= r.end:
                return r, gpa - r.gpa
        raise GuestMemoryError(f"guest range {gpa:#x}-{gpa + size:#x} is not inside guest RAM "
                               f"({', '.join(f'{r.gpa:#x}-{r.end:#x}' for r in self.regions)})")

    def contains(self, gpa: int, size: int) -> bool:
        try:
            self._find(gpa, size)
            return True
        except GuestMemoryError:
            return False

    def host_address(self, gpa: int, size: int) -> int:
        """The host address of [gpa, gpa+size), which must lie in one RAM range (for ctypes.memmove)."""
        r, off = self._find(gpa, size)
        return r.mapping.addr + off

    def view(self, gpa: int, size: int) -> memoryview:
        """A writable view of guest RAM; valid until close(), so callers must not keep it."""
        r, off = self._find(gpa, size)
        return r.mapping.view[off:off + size]

    def read(self, gpa: int, size: int) -> bytes:
        r, off = self._find(gpa, size)
        return bytes(r.mapping.view[off:off + size])

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        r, off = self._find(gpa, n)
        dst = r.mapping.view
        source = _file_mapping(data)
        if source is None:
            dst[off:off + n] = data
            return
        mapping, start = source             # a slice of a mapped file: copy it in chunks, unmapping behind
        for i in range(0, n, DROP_CHUNK):
            j = min(n, i + DROP_CHUNK)
            dst[off + i:off + j] = data[i:j]
            lo, hi = -(-(start + i) // PAGE) * PAGE, (start + j) // PAGE * PAGE
            if hi > lo:
                mapping.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def zero(self, gpa: int, size: int) -> None:
        r, off = self._find(gpa, size)
        ZERO_CHUNK = 1 << 20
        v = r.mapping.view
        zeros = bytes(min(size, ZERO_CHUNK))
        end = off + size
        while off < end:
            n = min(ZERO_CHUNK, end - off)
            v[off:off + n] = zeros[:n] if n != len(zeros) else zeros
            off += n

    def close(self) -> None:
        for r in self.regions:
            r.mapping.close()
        self.regions = []

    def __enter__(self) -> "GuestMemory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Host memory mappings through libc mmap, so the VMM holds raw addresses and byte memoryviews.

Python's mmap module would do, but it dup()s file descriptors and refuses to close while any view
is exported; here the owner decides when a mapping dies and no fd outlives the vCPU.
"""

import ctypes

from .errors import KvmError
from .ioctl import _libc

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE = 0x01, 0x02, 0x20, 0x4000
_MAP_FAILED = ctypes.c_void_p(-1).value

_mmap = _libc["mmap"]
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_munmap = _libc["munmap"]
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_mprotect = _libc["mprotect"]
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise = _libc["madvise"]
_madvise.restype = ctypes.c_int
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_POPULATE_WRITE = 23      # Linux 5.14+
PAGE = 4096
HUGE_PAGE = 2 << 20


class HostMapping:
    """A mapping of `size` bytes: `.addr` for KVM, `.view` (a byte memoryview) for Python copies."""

    addr = 0          # until mapped: close() (and __del__ after a failed map) then has nothing to undo

    def __init__(self, size: int, fd: int = -1, shared: bool = False, what: str = "mmap",
                 huge: bool = False, guard: int = 0) -> None:
        """huge: anonymous memory 2 MiB-aligned and advised for transparent huge pages. Guest RAM wants it:
        KVM then maps the guest with 2 MiB pages (fewer faults and shadow-page updates), as QEMU arranges.

        guard: at least this many PROT_NONE bytes (a multiple of the page size) stay reserved on each side of an
        anonymous mapping, so a host write that strays past either end faults (SIGSEGV) instead of landing in
        whatever the allocator put next to it. The reservation costs address space only, never memory."""
        flags = (MAP_SHARED if shared else MAP_PRIVATE) | (MAP_ANONYMOUS | MAP_NORESERVE if fd < 0 else 0)
        huge = huge and fd < 0 and size >= HUGE_PAGE
        guard = guard if fd < 0 else 0
        if guard % PAGE:
            raise ValueError(f"guard {guard:#x} is not a multiple of the page size")
        if not guard:
            self._map_plain(size, fd, flags, what, huge)
        else:
            self._map_guarded(size, flags, what, huge, guard)
        self.size = size
        self.view: memoryview = memoryview((ctypes.c_char * size).from_address(self.addr)).cast("B")

    def _map_plain(self, size: int, fd: int, flags: int, what: str, huge: bool) -> None:
        slack = HUGE_PAGE if huge else 0
        addr = _mmap(None, size + slack, PROT_READ | PROT_WRITE, flags, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            raise KvmError(what, ctypes.get_errno(), f"cannot map {size:#x} bytes")
        if huge:
            head = -addr % HUGE_PAGE
            if head:
                _munmap(addr, head)
            if slack - head:
                _munmap(addr + head + size, slack - head)
            addr += head
            _madvise(addr, size, MADV_HUGEPAGE)       # advice only: without THP the mapping still works
        self.addr: int = addr
        self._base, self._total = addr, size

    def _map_guarded(self, size: int, flags: int, what: str, huge: bool, guard: int) -> None:
        """Reserve guard + size + guard (+ alignment slack) as PROT_NONE, then open the aligned middle read-write;
        the inaccessible rest stays mapped until close() so nothing else can be placed there."""
        slack = HUGE_PAGE if huge else 0
        total = size + 2 * guard + slack
        base = _mmap(None, total, PROT_NONE, flags, -1, 0)
        if base is None or base == _MAP_FAILED:
            raise KvmError(what, ctypes.get_errno(), f"cannot reserve {total:#x} bytes")
        addr = base + guard
        if huge:
            addr += -addr % HUGE_PAGE
        if _mprotect(addr, size, PROT_READ | PROT_WRITE) != 0:
            err = ctypes.get_errno()
            _munmap(base, total)
            raise KvmError(what, err, f"cannot open {size:#x} bytes of the reservation")
        if huge:
            _madvise(addr, size, MADV_HUGEPAGE)
        self.addr = addr
        self._base, self._total = base, total

    def populate(self, offset: int = 0, size: int | None = None) -> bool:
        """Fault in [offset, offset+size) for writing in one call (MADV_POPULATE_WRITE), with huge pages where the
        mapping has them. A big copy into fresh memory then costs no page fault per page, and no direct compaction
        stall inside one; False (and nothing done) where the kernel lacks it."""
        size = self.size - offset if size is None else size
        start = offset // PAGE * PAGE
        end = min(self.size, -(-(offset + size) // PAGE) * PAGE)
        return end > start and _madvise(self.addr + start, end - start, MADV_POPULATE_WRITE) == 0

    def no_huge_pages(self, offset: int) -> None:
        """Advise [offset, end) against transparent huge pages, so what is faulted in there from now on is 4 KiB pages
        (offset rounded up to a page)."""
        start = -(-offset // PAGE) * PAGE
        if start < self.size:
            _madvise(self.addr + start, self.size - start, MADV_NOHUGEPAGE)

    def close(self) -> None:
        """Unmap; every view handed out must be dead by now (the owner guarantees it)."""
        if self.addr:
            self.view.release()
            _munmap(self._base, self._total)
            self.addr = 0

    def __del__(self) -> None:
        self.close()

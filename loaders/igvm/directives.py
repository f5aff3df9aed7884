"""The directives of a file as read, kept compact: a PAGE_DATA header that passed the reader's checks stays in
the file and is made into a PageData record only when asked for; the few other directives are records.

A file of 100,000 PAGE_DATA headers (3 MiB) would otherwise hold 100,000 records, memoryviews and ints (about
30 MiB of Python objects); here it holds one 8-byte file offset per header. The records made on access equal
the ones the reader would have kept (same fields, data a memoryview into the same buffer), so equality with a
tuple of records, the writer's round trip and every consumer that iterates or indexes are unchanged. The
caller's buffer must not change after reading (its page data was never copied before either).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from .constants import PAGE_SIZE, PAGE_SIZE_2M, PageDataFlags
from .structs import PAGE_DATA

_IS_2MB = int(PageDataFlags.IS_2MB_PAGE)
_unpack_page = PAGE_DATA.unpack_from


class Directives(Sequence):
    """A read-only sequence of directives: header `base + i` of `offsets` is directive i; `records` holds
    the directives the reader made (index -> record), the rest are PAGE_DATA headers made on access."""

    __slots__ = ("_buf", "_offsets", "_base", "_records", "_make")

    def __init__(self, buf: memoryview, offsets: array, base: int, records: dict[int, object], make) -> None:
        self._buf, self._offsets, self._base, self._records, self._make = buf, offsets, base, records, make

    def __len__(self) -> int:
        return len(self._offsets) - self._base

    def _page(self, pos: int):
        gpa, mask, off, flags, dtype, _ = _unpack_page(self._buf, pos + 8)
        span = PAGE_SIZE_2M if flags & _IS_2MB else PAGE_SIZE
        return self._make(gpa, mask, flags, dtype, self._buf[off:off + span] if off else None, off)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("directive index out of range")
        rec = self._records.get(i)
        return rec if rec is not None else self._page(self._offsets[self._base + i])

    def __iter__(self):
        records, offsets, page = self._records, self._offsets, self._page
        for i in range(len(self)):
            rec = records.get(i)
            yield rec if rec is not None else page(offsets[self._base + i])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (tuple, Directives)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))

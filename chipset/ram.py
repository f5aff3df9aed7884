"""The guest-memory accessor a DMA-capable device is handed, and a bytearray-backed one for unit tests.

A device never sees host addresses: it asks the accessor, which raises ValueError for any range that is not
entirely inside one RAM range, so a bad guest address can only ever become an error reply.
"""

from __future__ import annotations


class GuestRam:
    """What vmm.memory.GuestMemory offers; every method raises ValueError outside RAM (a structural interface,
    not a base class: a plain class rather than typing.Protocol keeps `typing` off the launch path)."""

    def contains(self, gpa: int, size: int) -> bool: ...
    def read(self, gpa: int, size: int) -> bytes: ...
    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None: ...
    def zero(self, gpa: int, size: int) -> None: ...


class FlatRam:
    """RAM ranges held in bytearrays (gaps between them are holes), for testing devices without KVM."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        self.ranges = [(gpa, bytearray(size)) for gpa, size in sorted(ranges)]

    def _find(self, gpa: int, size: int) -> tuple[bytearray, int]:
        if gpa >= 0 and size >= 0:
            for base, buf in self.ranges:
                if base <= gpa and gpa + size <= base + len(buf):
                    return buf, gpa - base
        raise ValueError(f"guest range {gpa:#x}+{size:#x} is not inside RAM")

    def contains(self, gpa: int, size: int) -> bool:
        try:
            self._find(gpa, size)
        except ValueError:
            return False
        return True

    def read(self, gpa: int, size: int) -> bytes:
        buf, off = self._find(gpa, size)
        return bytes(buf[off:off + size])

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        buf, off = self._find(gpa, len(data))
        buf[off:off + len(data)] = data

    def zero(self, gpa: int, size: int) -> None:
        buf, off = self._find(gpa, size)
        buf[off:off + size] = bytes(size)

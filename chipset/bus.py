"""The port-I/O bus: a 65536-entry table from port to (device, offset), filled at registration time.

A run loop calls pio() at the first exit of each kind of access (port, size, direction) and keeps what the bus
says in its port cache (port_cache), so the next ones call the device's method directly; the bus empties the
caches whenever a device comes or goes. Unknown ports read as all-ones (what a PC's floating bus and QEMU return)
and ignore writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

PORT_COUNT = 0x10000
_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}
_FF = {n: b"\xff" * n for n in (1, 2, 4)}   # what a read of an unclaimed port returns, prebuilt
# Entries a port cache holds at most. A guest touches a few dozen kinds of access; one that walks every port at every
# width (393,216 kinds) would otherwise grow each vCPU's cache to about 100 MB. Past it, accesses take pio().
PORT_CACHE_LIMIT = 4096


class PortDevice:
    """What a device on the bus offers (a structural interface: devices need not inherit from it)."""

    def io_read(self, offset: int, size: int) -> int: ...
    def io_write(self, offset: int, size: int, value: int) -> None: ...


class PortBus:
    """Routes port accesses to devices; on_unknown(port, is_write, size) is told once per unclaimed port."""

    def __init__(self, on_unknown: Callable[[int, bool, int], None] | None = None) -> None:
        self._table: list[tuple[PortDevice, int] | None] = [None] * PORT_COUNT
        self._ranges: list[tuple[int, int, str]] = []
        self._on_unknown = on_unknown
        self._seen: set[int] = set()
        self._caches: list[dict] = []          # the run loops' port caches (port_cache), emptied on every change
        self._lock = threading.Lock()          # a cache entry is made from the table as it is, never a stale one

    def register(self, base: int, length: int, device: PortDevice, name: str, offset: int = 0) -> None:
        """Route ports base..base+length-1 to device at offsets offset.. (offset: a device whose ports are not
        contiguous, such as the i8042's 0x60 and 0x64 around port 0x61, registers each part at its own)."""
        if length <= 0 or base < 0 or base + length > PORT_COUNT:
            raise ValueError(f"{name}: port range {base:#x}+{length} is outside 0..0xffff")
        with self._lock:
            for b, n, other in self._ranges:
                if base < b + n and b < base + length:
                    raise ValueError(f"{name} at {base:#x}-{base + length - 1:#x} overlaps {other} at "
                                     f"{b:#x}-{b + n - 1:#x}")
            self._ranges.append((base, length, name))
            self._ranges.sort()
            for i in range(length):
                self._table[base + i] = (device, offset + i)
            self._forget()

    def unregister(self, base: int) -> None:
        """Remove the device registered at base (a decoder the guest moves, such as the PIIX4 PM block)."""
        with self._lock:
            for entry in self._ranges:
                if entry[0] == base:
                    self._ranges.remove(entry)
                    for i in range(entry[1]):
                        self._table[base + i] = None
                    self._forget()
                    return
        raise ValueError(f"nothing is registered at port {base:#x}")

    def port_cache(self) -> dict:
        """A new, empty cache for one run loop: the u.io word of a single port access (direction | size << 8 |
        port << 16 | count << 32) -> (method, offset, size, view, index, mask), filled by cache_access(). A loop
        that finds its word there makes the access without calling into the bus: method(offset, size) & mask into
        view[index] for a read (mask != 0), method(offset, size, view[index]) for a write (mask 0), and for an
        unclaimed port (method None) all-ones for a read and nothing for a write. The bus empties every cache
        when a device comes or goes; drop_cache() when the loop ends."""
        cache: dict = {}
        with self._lock:
            self._caches.append(cache)
        return cache

    def cache_access(self, cache: dict, word: int, port: int, write: bool, size: int, view, index: int,
                     mask: int) -> None:
        """Enter the access `word` in `cache`, as the table routes it now, unless the cache is full
        (PORT_CACHE_LIMIT). Only after the same access went through pio(), which reports an unclaimed port the
        first time (so a cached one has been reported)."""
        with self._lock:
            if len(cache) >= PORT_CACHE_LIMIT:
                return
            entry = self._table[port]
            if entry is None:
                cache[word] = (None, 0, size, view, index, mask)
                return
            dev, off = entry
            cache[word] = (dev.io_write if write else dev.io_read, off, size, view, index, mask)

    def drop_cache(self, cache: dict) -> None:
        """Empty `cache` and stop tracking it (its entries hold views of a vCPU's kvm_run page, which is unmapped
        after its loop ends)."""
        with self._lock:
            cache.clear()
            self._caches = [c for c in self._caches if c is not cache]

    def _forget(self) -> None:
        for cache in self._caches:
            cache.clear()

    def registrations(self) -> list[tuple[int, int, str]]:
        """(base, length, name) of every device, sorted by port, for --trace and docs."""
        return list(self._ranges)

    def _unknown(self, port: int, is_write: bool, size: int) -> None:
        if port not in self._seen:
            self._seen.add(port)
            if self._on_unknown is not None:
                self._on_unknown(port, is_write, size)

    def read(self, port: int, size: int) -> int:
        entry = self._table[port & 0xFFFF]
        if entry is None:
            self._unknown(port, False, size)
            return _ONES[size]
        return entry[0].io_read(entry[1], size) & _ONES[size]

    def write(self, port: int, size: int, value: int) -> None:
        entry = self._table[port & 0xFFFF]
        if entry is None:
            self._unknown(port, True, size)
            return
        entry[0].io_write(entry[1], size, value & _ONES[size])

    def pio(self, port: int, size: int, count: int, is_write: bool, data: memoryview) -> None:
        """One I/O exit: `count` accesses of `size` bytes; data is the kvm_run I/O buffer (size*count bytes).

        An access to an unclaimed port reads all-ones; a read always fills the whole buffer, since KVM
        does not clear it.
        """
        entry = self._table[port]
        if entry is None:
            if port not in self._seen:
                self._unknown(port, is_write, size)
            if is_write:
                return
            if count == 1 and size == 1:
                data[0] = 0xFF
            else:
                data[:] = _FF.get(len(data)) or b"\xff" * len(data)
            return
        dev, off = entry
        if count == 1:                      # the common case; a one-byte access needs no int<->bytes conversion
            if is_write:
                dev.io_write(off, size, data[0] if size == 1 else int.from_bytes(data, "little"))
            elif size == 1:
                data[0] = dev.io_read(off, 1) & 0xFF
            else:
                data[:] = (dev.io_read(off, size) & _ONES[size]).to_bytes(size, "little")
            return
        if is_write:
            many = getattr(dev, "io_write_string", None)
            if many is not None:
                many(off, size, bytes(data))
                return
            for i in range(0, size * count, size):
                dev.io_write(off, size, int.from_bytes(data[i:i + size], "little"))
        else:
            many = getattr(dev, "io_read_string", None)
            if many is not None:
                chunk = many(off, size, count)
                n = min(len(chunk), len(data))
                data[:n] = chunk[:n]
                if n < len(data):
                    data[n:] = b"\xff" * (len(data) - n)
                return
            mask = _ONES[size]
            for i in range(0, size * count, size):
                data[i:i + size] = (dev.io_read(off, size) & mask).to_bytes(size, "little")

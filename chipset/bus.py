"""The port-I/O bus: a 65536-entry table from port to (device, offset), filled at registration time.

The run loop calls pio() once per I/O exit, so lookups are one list index and no allocation;
unknown ports read as all-ones (what a PC's floating bus and QEMU return) and ignore writes.
"""

from __future__ import annotations

from collections.abc import Callable

PORT_COUNT = 0x10000
_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}
_FF = {n: b"\xff" * n for n in (1, 2, 4)}   # what a read of an unclaimed port returns, prebuilt


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

    def register(self, base: int, length: int, device: PortDevice, name: str, offset: int = 0) -> None:
        """Route ports base..base+length-1 to device at offsets offset.. (offset: a device whose ports are not
        contiguous, such as the i8042's 0x60 and 0x64 around port 0x61, registers each part at its own)."""
        if length <= 0 or base < 0 or base + length > PORT_COUNT:
            raise ValueError(f"{name}: port range {base:#x}+{length} is outside 0..0xffff")
        for b, n, other in self._ranges:
            if base < b + n and b < base + length:
                raise ValueError(f"{name} at {base:#x}-{base + length - 1:#x} overlaps {other} at {b:#x}-{b + n - 1:#x}")
        self._ranges.append((base, length, name))
        self._ranges.sort()
        for i in range(length):
            self._table[base + i] = (device, offset + i)

    @property
    def reports_unknown(self) -> bool:
        """Whether an unclaimed port is reported (on_unknown given); if not, a run loop need not tell the bus of one."""
        return self._on_unknown is not None

    def lookup_tables(self) -> tuple[list[tuple[PortDevice, int] | None], set[int]]:
        """The port table (port -> (device, offset) or None) and the set of unclaimed ports already reported,
        for a run loop that handles one-byte accesses inline: read-only to it; a port not in the set goes
        through pio(), which reports it."""
        return self._table, self._seen

    def unregister(self, base: int) -> None:
        """Remove the device registered at base (a decoder the guest moves, such as the PIIX4 PM block)."""
        for entry in self._ranges:
            if entry[0] == base:
                self._ranges.remove(entry)
                for i in range(entry[1]):
                    self._table[base + i] = None
                return
        raise ValueError(f"nothing is registered at port {base:#x}")

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

"""Small PC ports every guest or firmware touches: POST codes (0x80), fast A20 (0x92), reset control (0xcf9)."""

from __future__ import annotations

from collections.abc import Callable


class PostCode:
    """Port 0x80: io_delay writes and firmware POST codes. Keeps the last code (handy in dumps), reads it back."""

    def __init__(self) -> None:
        self.last = 0

    def io_read(self, offset: int, size: int) -> int:
        return self.last

    def io_write(self, offset: int, size: int, value: int) -> None:
        self.last = value & 0xFF

    def io_write_string(self, offset: int, size: int, data: bytes) -> None:
        """Codes written one after another (a rep outsb, or the writes KVM buffered): the last one stays."""
        if data:
            self.last = data[-size]


class FastA20:
    """Port 0x92 (system control port A): A20 always enabled; bit 0 written as 1 is a fast reset."""

    def __init__(self, reset: Callable[[], None] | None = None) -> None:
        self.reset = reset

    def io_read(self, offset: int, size: int) -> int:
        return 0x02

    def io_write(self, offset: int, size: int, value: int) -> None:
        if value & 0x01 and self.reset is not None:
            self.reset()


class ResetControl:
    """Port 0xcf9 as on PIIX/ICH: writing with bit 2 (RST_CPU) set resets the machine; the FADT reset register."""

    def __init__(self, reset: Callable[[], None]) -> None:
        self.reset = reset
        self.value = 0

    def io_read(self, offset: int, size: int) -> int:
        return self.value

    def io_write(self, offset: int, size: int, value: int) -> None:
        self.value = value & 0x0E
        if value & 0x04:
            self.reset()

"""QEMU's isa-debug-exit: a guest write of V ends the VMM with status (V << 1) | 1, so tests can report results."""

from __future__ import annotations

from collections.abc import Callable


class DebugExit:
    """Port 0xf4 by convention; reads return all-ones as on QEMU."""

    def __init__(self, on_exit: Callable[[int], None]) -> None:
        self.on_exit = on_exit

    def io_read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def io_write(self, offset: int, size: int, value: int) -> None:
        self.on_exit(((value & ((1 << (8 * size)) - 1)) << 1) | 1)

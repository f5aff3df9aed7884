"""Bochs/QEMU debug console (QEMU's isa-debugcon, `-debugcon`): every byte written goes to a sink; a read returns
0xE9, the magic edk2's PlatformDebugLibIoPort (OvmfPkg/Library/PlatformDebugLibIoPort/DebugIoPortQemu.c) checks
before it sends DEBUG() output there."""

from __future__ import annotations

from collections.abc import Callable

BOCHS_MAGIC = 0xE9


class DebugCon:
    def __init__(self, output: Callable[[bytes], object]) -> None:
        self.output = output

    def io_read(self, offset: int, size: int) -> int:
        return BOCHS_MAGIC

    def io_write(self, offset: int, size: int, value: int) -> None:
        self.output(value.to_bytes(size, "little")[:1] if size == 1 else bytes([value & 0xFF]))

    def io_write_string(self, offset: int, size: int, data: bytes) -> None:
        self.output(data[::size])

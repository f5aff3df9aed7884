"""PCI configuration mechanism #1 (the address register at 0xCF8, data at 0xCFC-0xCFF) and a config-space function.

Access pattern and semantics as QEMU's pci_host (hw/pci/pci_host.c): the address register is a 32-bit register
reached only by dword accesses; data accesses of 1, 2 or 4 bytes at 0xCFC + (reg & 3) go to the function the
address selects when its enable bit (31) is set; an absent function reads all-ones, writes to it are dropped.
edk2's BasePciLibCf8 saves and restores the address register around every access, so it must read back.
"""

from __future__ import annotations

import struct

ENABLE = 1 << 31
CONFIG_SIZE = 256
_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}

# Standard header offsets (PCI Local Bus Specification 3.0, 6.1)
VENDOR_ID, DEVICE_ID, COMMAND, STATUS, REVISION, CLASS_PROG = 0x00, 0x02, 0x04, 0x06, 0x08, 0x09
HEADER_TYPE, SUBSYS_VENDOR, SUBSYS_ID, INTERRUPT_LINE, INTERRUPT_PIN = 0x0E, 0x2C, 0x2E, 0x3C, 0x3D
MULTIFUNCTION = 0x80


def devfn(device: int, function: int) -> int:
    return (device << 3) | function


class PciFunction:
    """256 bytes of configuration space with a write mask: bits set in `wmask` keep what the guest writes, the
    rest read as set at construction. Subclasses react to writes in `written(offset, size)`."""

    def __init__(self, vendor: int, device: int, revision: int, class_code: int, header_type: int = 0,
                 status: int = 0, command: int = 0, pin: int = 0, subsystem: tuple[int, int] = (0, 0)) -> None:
        self.config = bytearray(CONFIG_SIZE)
        self.wmask = bytearray(CONFIG_SIZE)
        struct.pack_into("<HHHHB", self.config, 0, vendor, device, command, status, revision)
        self.config[CLASS_PROG:CLASS_PROG + 3] = class_code.to_bytes(3, "little")
        self.config[HEADER_TYPE] = header_type
        struct.pack_into("<HH", self.config, SUBSYS_VENDOR, *subsystem)
        self.config[INTERRUPT_PIN] = pin
        self.writable(COMMAND, 2)
        self.writable(INTERRUPT_LINE, 1)

    def writable(self, offset: int, size: int, mask: int | None = None) -> None:
        """Let the guest write `size` bytes at offset (only the bits of mask, default all)."""
        m = (1 << (8 * size)) - 1 if mask is None else mask
        self.wmask[offset:offset + size] = m.to_bytes(size, "little")

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.config[offset:offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        cfg, wm = self.config, self.wmask
        for i in range(size):
            b = (value >> (8 * i)) & 0xFF
            m = wm[offset + i]
            cfg[offset + i] = (cfg[offset + i] & ~m) | (b & m)
        self.written(offset, size)

    def written(self, offset: int, size: int) -> None:
        """Hook: the guest wrote config bytes [offset, offset+size)."""


class _AddressPort:
    def __init__(self, host: "PciConf1") -> None:
        self.host = host

    def io_read(self, offset: int, size: int) -> int:
        return self.host.address if size == 4 else _ONES[size]

    def io_write(self, offset: int, size: int, value: int) -> None:
        if size == 4:
            self.host.address = value & 0xFFFFFFFC | (value & ENABLE)


class _DataPort:
    def __init__(self, host: "PciConf1") -> None:
        self.host = host

    def io_read(self, offset: int, size: int) -> int:
        fn, reg = self.host.target(offset, size)
        return _ONES[size] if fn is None else fn.read(reg, size)

    def io_write(self, offset: int, size: int, value: int) -> None:
        fn, reg = self.host.target(offset, size)
        if fn is not None:
            fn.write(reg, size, value)


class PciConf1:
    """Bus 0 behind configuration mechanism #1: register `address_port` (1 port) and `data_port` (4 ports)."""

    def __init__(self) -> None:
        self.address = 0
        self.functions: dict[int, PciFunction] = {}
        self.address_port = _AddressPort(self)
        self.data_port = _DataPort(self)

    def add(self, device: int, function: int, fn: PciFunction) -> None:
        if not (0 <= device < 32 and 0 <= function < 8):
            raise ValueError(f"PCI 00:{device:02x}.{function} is outside device 0-31, function 0-7")
        key = devfn(device, function)
        if key in self.functions:
            raise ValueError(f"PCI 00:{device:02x}.{function} is taken")
        self.functions[key] = fn

    def target(self, offset: int, size: int) -> tuple[PciFunction | None, int]:
        """The function and register a data access at 0xCFC+offset reaches; (None, 0) when none (or it would
        cross the dword)."""
        a = self.address
        if not a & ENABLE or (a >> 16) & 0xFF or offset + size > 4:
            return None, 0
        return self.functions.get((a >> 8) & 0xFF), (a & 0xFC) + offset

"""QEMU's fw_cfg on x86 ports (selector 0x510, data 0x511, DMA 0x514/0x518), so firmware and Linux find their
configuration where they look for it on QEMU. Semantics follow QEMU hw/nvram/fw_cfg.c and docs/specs/fw_cfg.rst.

The item set is plain data handed in; guest memory comes through a GuestRam accessor (chipset.ram), so a
malformed DMA descriptor can only end in the ERROR bit, never in an exception or a host access.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

from .ram import GuestRam

FW_CFG_PORTS = 12                  # 0x510-0x51b: selector/data, a 2-port gap, the 8 DMA ports (QEMU's _CRS length)
SIGNATURE = b"QEMU"
DMA_SIGNATURE = b"QEMU CFG"
MAX_NAME = 55                      # FW_CFG_MAX_FILE_PATH (56) less the NUL
FILE_SLOTS = 0x20                  # QEMU's default number of file items
DIR_ENTRY = struct.Struct(">IHH56s")
DMA_ACCESS = struct.Struct(">IIQ")  # control, length, address (all big-endian)
ENTRY_MASK = 0x3FFF                # key bits that index a table (0x4000 is the legacy write flag)
ARCH_LOCAL = 0x8000


class Offset:
    """Port offsets from the selector port (where the machine registers the device). These constant classes are
    plain ints, not enums: the `enum` module stays off the launch path."""
    SELECTOR = 0
    DATA = 1
    DMA_HIGH = 4
    DMA_LOW = 8


class Key:
    """Well-known selectors (QEMU include/standard-headers/linux/qemu_fw_cfg.h)."""
    SIGNATURE = 0x00
    ID = 0x01
    UUID = 0x02
    RAM_SIZE = 0x03
    NOGRAPHIC = 0x04
    NB_CPUS = 0x05
    KERNEL_ADDR = 0x07
    KERNEL_SIZE = 0x08
    INITRD_ADDR = 0x0A
    INITRD_SIZE = 0x0B
    NUMA = 0x0D
    BOOT_MENU = 0x0E
    MAX_CPUS = 0x0F
    KERNEL_ENTRY = 0x10
    KERNEL_DATA = 0x11
    INITRD_DATA = 0x12
    CMDLINE_ADDR = 0x13
    CMDLINE_SIZE = 0x14
    CMDLINE_DATA = 0x15
    SETUP_ADDR = 0x16
    SETUP_SIZE = 0x17
    SETUP_DATA = 0x18
    FILE_DIR = 0x19
    FILE_FIRST = 0x20
    ACPI_TABLES = 0x8000
    IRQ0_OVERRIDE = 0x8002
    HPET = 0x8004


class IdFeature:
    """FW_CFG_ID bits."""
    TRADITIONAL = 0x01
    DMA = 0x02


class DmaControl:
    """FWCfgDmaAccess.control bits; SELECT carries the key in bits 31..16."""
    ERROR = 0x01
    READ = 0x02
    SKIP = 0x04
    SELECT = 0x08
    WRITE = 0x10


WriteCallback = Callable[[int, bytes], None]


class FwCfgFile:
    """A named item in the file directory.

    A writable file (QEMU's fw_cfg_add_file_callback with allow_write) keeps its size; a DMA WRITE that fits in
    what is left of it from the current offset replaces those bytes, then on_write(offset, bytes written) runs
    (QEMU's write_cb), so the VMM learns e.g. the guest address a table loader's WRITE_POINTER reports. on_write
    runs on the writing vCPU's thread under the device lock: keep it short and do not call back into the device.
    A plain immutable class, not a dataclass: the `dataclasses` module stays off the launch path."""

    __slots__ = ("name", "data", "writable", "on_write")
    name: str
    data: bytes | memoryview
    writable: bool
    on_write: WriteCallback | None

    def __init__(self, name: str, data: bytes | memoryview, writable: bool = False,
                 on_write: WriteCallback | None = None) -> None:
        for k, v in (("name", name), ("data", data), ("writable", writable), ("on_write", on_write)):
            object.__setattr__(self, k, v)
        raw = self.name.encode()
        if not raw or len(raw) > MAX_NAME or b"\0" in raw:
            raise ValueError(f"fw_cfg file name {self.name!r} must be 1..{MAX_NAME} bytes without NUL")
        if self.on_write is not None and not self.writable:
            raise ValueError(f"fw_cfg file {self.name}: on_write needs a writable file")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen FwCfgFile")

    def __eq__(self, other: object) -> bool:      # on_write is not compared, as it was not in the dataclass
        if other.__class__ is not FwCfgFile:
            return NotImplemented
        return (self.name, self.data, self.writable) == (other.name, other.data, other.writable)

    def __hash__(self) -> int:
        return hash((self.name, self.data, self.writable))

    def __repr__(self) -> str:
        return f"FwCfgFile(name={self.name!r}, data={self.data!r}, writable={self.writable!r})"


class FwCfgItems:
    """Everything the device serves: numbered items (Key or any selector) and files (the directory is built)."""

    def __init__(self, keys: dict[int, bytes | memoryview] | None = None, files: list[FwCfgFile] | None = None) -> None:
        self.keys = {} if keys is None else keys
        self.files = [] if files is None else files

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not FwCfgItems:
            return NotImplemented
        return (self.keys, self.files) == (other.keys, other.files)

    __hash__ = None   # mutable

    def __repr__(self) -> str:
        return f"FwCfgItems(keys={self.keys!r}, files={self.files!r})"

    def file(self, name: str) -> FwCfgFile | None:
        return next((f for f in self.files if f.name == name), None)


def directory(files: list[FwCfgFile]) -> tuple[bytes, list[tuple[int, FwCfgFile]]]:
    """The key 0x19 blob and (selector, file) pairs: sorted by name, select = 0x20 + index, as QEMU orders them.

    ValueError for duplicate names or more files than QEMU's slots."""
    ordered = sorted(files, key=lambda f: f.name.encode())
    for a, b in zip(ordered, ordered[1:]):
        if a.name == b.name:
            raise ValueError(f"duplicate fw_cfg file name: {a.name}")
    if len(ordered) > FILE_SLOTS:
        raise ValueError(f"{len(ordered)} fw_cfg files; QEMU's fw_cfg has {FILE_SLOTS} slots")
    pairs = [(Key.FILE_FIRST + i, f) for i, f in enumerate(ordered)]
    blob = struct.pack(">I", len(pairs)) + b"".join(DIR_ENTRY.pack(len(f.data), sel, 0, f.name.encode())
                                                     for sel, f in pairs)
    return blob, pairs


class FwCfg:
    """The port device: FW_CFG_PORTS long, registered where the machine's layout says. Thread-safe (vCPUs may race
    on it)."""

    def __init__(self, memory: GuestRam, items: FwCfgItems, on_error: Callable[[str], None] | None = None) -> None:
        self.memory = memory
        self.on_error = on_error
        self._lock = threading.Lock()
        self._table: dict[int, bytes | memoryview | bytearray] = {k & ~0x4000: v for k, v in items.keys.items()}
        blob, pairs = directory(items.files)
        self._table[Key.FILE_DIR] = blob
        self._names = {sel: f.name for sel, f in pairs}
        self._writable: dict[int, WriteCallback | None] = {}     # selector -> on_write, for writable files only
        for sel, f in pairs:
            # a writable file handed in as a bytearray is served from it, so its owner can put back in on_write
            # what it accepted (a shadow copy, as etc/vmfwupdate does); other data is copied
            own = f.writable and isinstance(f.data, bytearray)
            self._table[sel] = f.data if own or not f.writable else bytearray(f.data)
            if f.writable:
                self._writable[sel] = f.on_write
        self._table.setdefault(Key.SIGNATURE, SIGNATURE)
        self._table.setdefault(Key.ID, struct.pack("<I", IdFeature.TRADITIONAL | IdFeature.DMA))
        self._empty = b""
        self.key = 0
        self.offset = 0
        self.dma_addr = 0
        self.current = self._table[Key.SIGNATURE]     # device reset selects the signature

    # --- selector and data port ---------------------------------------------------------
    def _select(self, key: int) -> None:
        key &= 0xFFFF
        self.key = key
        self.offset = 0
        self.current = self._table.get(key & (ENTRY_MASK | ARCH_LOCAL), self._empty)

    def _take(self, n: int) -> bytes:
        """The next n data bytes, zero past the item's end (QEMU reads 0x00 there)."""
        data, off = self.current, self.offset
        chunk = bytes(data[off:off + n])
        self.offset = max(off, min(off + n, len(data)))
        if len(chunk) < n:
            chunk += bytes(n - len(chunk))
        return chunk

    def io_read(self, offset: int, size: int) -> int:
        if offset <= Offset.DATA:
            if size != 1:
                return (1 << (8 * size)) - 1          # QEMU's comb region only decodes byte reads
            with self._lock:
                return self._take(1)[0]
        if offset >= Offset.DMA_HIGH:
            o = offset - Offset.DMA_HIGH
            return int.from_bytes((DMA_SIGNATURE[o:o + size] + bytes(size))[:size], "little")
        return (1 << (8 * size)) - 1

    def io_read_string(self, offset: int, size: int, count: int) -> bytes:
        """rep insb on the data port: the whole run in one slice."""
        if offset <= Offset.DATA and size == 1:
            with self._lock:
                return self._take(count)
        return self.io_read(offset, size).to_bytes(size, "little") * count

    def io_write(self, offset: int, size: int, value: int) -> None:
        if offset == Offset.SELECTOR and size == 2:
            with self._lock:
                self._select(value)
        elif offset == Offset.DMA_HIGH and size == 4:
            with self._lock:
                self.dma_addr = int.from_bytes(value.to_bytes(4, "little"), "big") << 32
        elif offset == Offset.DMA_LOW and size == 4:
            with self._lock:
                addr = self.dma_addr | int.from_bytes(value.to_bytes(4, "little"), "big")
                self.dma_addr = 0
                self._dma(addr)
        # data-port writes are ignored (QEMU >= 2.4); other widths do not decode

    def io_write_string(self, offset: int, size: int, data: bytes) -> None:
        if offset <= Offset.DATA and size == 1:
            return
        for i in range(0, len(data) - size + 1, size):
            self.io_write(offset, size, int.from_bytes(data[i:i + size], "little"))

    # --- DMA ----------------------------------------------------------------------------
    def _dma(self, addr: int) -> None:
        """One FWCfgDmaAccess at guest address addr; control is written back 0 or ERROR (spec 1.5)."""
        try:
            control, length, address = DMA_ACCESS.unpack(self.memory.read(addr, DMA_ACCESS.size))
        except ValueError:
            self._complete(addr, False, f"DMA descriptor at {addr:#x} is not in RAM")
            return
        if control & DmaControl.SELECT:
            self._select(control >> 16)
        if control & DmaControl.READ:
            ok = self._dma_read(length, address)
        elif control & DmaControl.WRITE:
            ok = self._dma_write(length, address)
        elif control & DmaControl.SKIP:
            self._skip(length)
            ok = True
        else:
            ok = True
        self._complete(addr, ok, "" if ok else f"DMA {control:#x} length {length:#x} at {address:#x} refused "
                                               f"(key {self.key:#x})")

    def _complete(self, addr: int, ok: bool, why: str) -> None:
        if not ok and self.on_error is not None:
            self.on_error(why)
        try:
            self.memory.write(addr, (0 if ok else DmaControl.ERROR).to_bytes(4, "big"))
        except ValueError:
            pass                                     # nowhere to report it: the guest sees no completion

    def _dma_read(self, length: int, address: int) -> bool:
        if not length:
            return True
        if not self.memory.contains(address, length):
            return False                             # outside RAM, across the hole, past 2**64 or absurdly long
        data, off = self.current, self.offset
        n = max(0, min(length, len(data) - off))
        if n:
            self.memory.write(address, memoryview(data)[off:off + n])
            self.offset = off + n
        if n < length:
            self.memory.zero(address + n, length - n)
        return True

    def _dma_write(self, length: int, address: int) -> bool:
        """QEMU's fw_cfg_dma_transfer WRITE: ERROR unless the item is writable, the whole length fits from the
        current offset and the source is RAM; nothing is copied then, but the offset still advances over what
        the item had left (as QEMU's cur_offset += len does). Absent items and offsets at the end stay put."""
        if not length:
            return True
        data, off = self.current, self.offset
        if off >= len(data):
            return False                             # absent item or nothing left: ERROR, offset unchanged
        n = min(length, len(data) - off)
        self.offset = off + n
        key = self.key & (ENTRY_MASK | ARCH_LOCAL)
        if key not in self._writable or n != length:
            return False                             # read-only, or would truncate
        try:
            chunk = self.memory.read(address, length)
        except ValueError:
            return False                             # source outside RAM
        data[off:off + length] = chunk
        callback = self._writable[key]
        if callback is not None:
            callback(off, bytes(chunk))
        return True

    def file_data(self, name: str) -> bytes:
        """A file's current bytes (a writable one's as the guest last wrote them); KeyError when absent."""
        with self._lock:
            for sel, n in self._names.items():
                if n == name:
                    return bytes(self._table[sel])
        raise KeyError(name)

    def _skip(self, length: int) -> None:
        if self.offset < len(self.current):
            self.offset = min(self.offset + length, len(self.current))

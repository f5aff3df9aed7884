"""ACPI the way QEMU hands it to firmware over fw_cfg: the table blob "etc/acpi/tables", "etc/acpi/rsdp", and the
"etc/table-loader" script that relocates them (QEMU hw/acpi/bios-linker-loader.c: 128-byte little-endian entries,
ALLOCATE / ADD_POINTER / ADD_CHECKSUM / WRITE_POINTER). run_loader() executes a script as SeaBIOS
(src/fw/romfile_loader.c) and OVMF (QemuFwCfgAcpiPlatformDxe) do, for tests.

WRITE_POINTER is how a VMM learns where firmware put a blob: the firmware writes the guest address of an
allocated file plus an offset into a *writable* fw_cfg file by DMA (QEMU's vmgenid reports "etc/vmgenid_guid" + 40
in "etc/vmgenid_addr" this way); chipset.fw_cfg serves such files and calls the file's on_write.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ..named import Named
from ..pc import PcHardware
from ..record import record
from .tables import build_dsdt, build_facs, build_fadt, build_rsdp_v1, build_rsdt

TABLES_FILE = "etc/acpi/tables"
RSDP_FILE = "etc/acpi/rsdp"
LOADER_FILE = "etc/table-loader"
ENTRY_SIZE = 128
NAME_SIZE = 56
FADT_FACS, FADT_DSDT, FADT_X_DSDT = 36, 40, 140   # pointer fields QEMU patches in the FADT
RSDP_RSDT = 16


class Command(Named):
    ALLOCATE = 1
    ADD_POINTER = 2
    ADD_CHECKSUM = 3
    WRITE_POINTER = 4


class Zone(Named):
    HIGH = 1
    FSEG = 2          # 0xE0000-0xFFFFF


@record(frozen=True)
class Allocate:
    file: str
    align: int
    zone: Zone


@record(frozen=True)
class AddPointer:
    pointer_file: str
    pointee_file: str
    offset: int
    size: int


@record(frozen=True)
class AddChecksum:
    file: str
    result_offset: int
    start: int
    length: int


@record(frozen=True)
class WritePointer:
    """Write (address of src_file + src_offset) as a size-byte little-endian value into the fw_cfg file dest_file
    at dst_offset, by fw_cfg DMA (dest_file need not be ALLOCATEd; it must be writable)."""
    dest_file: str
    src_file: str
    dst_offset: int
    src_offset: int
    size: int


LoaderCommand = Allocate | AddPointer | AddChecksum | WritePointer
POINTER_SIZES = (1, 2, 4, 8)
WRITE_POINTER_BODY = struct.Struct("<I56s56sIIB")   # command, dest_file, src_file, dst_offset, src_offset, size


def _name(text: str) -> bytes:
    raw = text.encode()
    if len(raw) >= NAME_SIZE:
        raise ValueError(f"table-loader file name {text!r} is longer than {NAME_SIZE - 1} bytes")
    return raw.ljust(NAME_SIZE, b"\0")


def encode(commands: list[LoaderCommand]) -> bytes:
    """The etc/table-loader blob: one zero-padded 128-byte little-endian entry per command.

    ValueError for a pointer size QEMU's builder would assert on (not 1, 2, 4 or 8) or a field out of range."""
    out = []
    for c in commands:
        if isinstance(c, (AddPointer, WritePointer)) and c.size not in POINTER_SIZES:
            raise ValueError(f"{type(c).__name__} pointer size {c.size} is not 1, 2, 4 or 8")
        try:
            if isinstance(c, Allocate):
                body = struct.pack("<I56sIB", Command.ALLOCATE, _name(c.file), c.align, c.zone)
            elif isinstance(c, AddPointer):
                body = struct.pack("<I56s56sIB", Command.ADD_POINTER, _name(c.pointer_file), _name(c.pointee_file),
                                   c.offset, c.size)
            elif isinstance(c, WritePointer):
                body = WRITE_POINTER_BODY.pack(Command.WRITE_POINTER, _name(c.dest_file), _name(c.src_file),
                                               c.dst_offset, c.src_offset, c.size)
            else:
                body = struct.pack("<I56sIII", Command.ADD_CHECKSUM, _name(c.file), c.result_offset, c.start,
                                   c.length)
        except struct.error as e:
            raise ValueError(f"{c}: {e}") from None
        out.append(body.ljust(ENTRY_SIZE, b"\0"))
    return b"".join(out)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode()


def decode(blob: bytes) -> list[LoaderCommand]:
    """Parse a script; zero entries are skipped (firmware ignores them), unknown commands raise ValueError."""
    if len(blob) % ENTRY_SIZE:
        raise ValueError(f"table-loader blob of {len(blob)} bytes is not a whole number of {ENTRY_SIZE}-byte entries")
    out: list[LoaderCommand] = []
    for pos in range(0, len(blob), ENTRY_SIZE):
        cmd = struct.unpack_from("<I", blob, pos)[0]
        if cmd == Command.ALLOCATE:
            name, align, zone = struct.unpack_from("<56sIB", blob, pos + 4)
            out.append(Allocate(_text(name), align, Zone(zone)))
        elif cmd == Command.ADD_POINTER:
            dst, src, offset, size = struct.unpack_from("<56s56sIB", blob, pos + 4)
            out.append(AddPointer(_text(dst), _text(src), offset, size))
        elif cmd == Command.ADD_CHECKSUM:
            name, result, start, length = struct.unpack_from("<56sIII", blob, pos + 4)
            out.append(AddChecksum(_text(name), result, start, length))
        elif cmd == Command.WRITE_POINTER:
            _, dst, src, dst_offset, src_offset, size = WRITE_POINTER_BODY.unpack_from(blob, pos)
            out.append(WritePointer(_text(dst), _text(src), dst_offset, src_offset, size))
        elif cmd:
            raise ValueError(f"table-loader entry {pos // ENTRY_SIZE}: unsupported command {cmd}")
    return out


def write_pointer_value(c: WritePointer, placed: dict[str, tuple[int, bytearray]], dest_size: int) -> bytes:
    """The bytes a WRITE_POINTER writes, after SeaBIOS's romfile_loader_write_pointer checks: the size is 1, 2, 4
    or 8, the pointer fits in the destination file, the source is ALLOCATEd and src_offset lies inside it, and the
    address fits in size bytes. ValueError naming the rule otherwise."""
    if c.size not in POINTER_SIZES:
        raise ValueError(f"WRITE_POINTER {c.dest_file}: size {c.size} is not 1, 2, 4 or 8")
    if c.dst_offset + c.size > dest_size:
        raise ValueError(f"WRITE_POINTER {c.dest_file}+{c.dst_offset} size {c.size} is past its {dest_size} bytes")
    if c.src_file not in placed:
        raise ValueError(f"WRITE_POINTER source {c.src_file!r} was not ALLOCATEd")
    gpa, data = placed[c.src_file]
    if c.src_offset >= len(data):
        raise ValueError(f"WRITE_POINTER source offset {c.src_offset} is outside {c.src_file} ({len(data)} bytes)")
    pointer = gpa + c.src_offset
    if pointer >> (8 * c.size):
        raise ValueError(f"WRITE_POINTER address {pointer:#x} does not fit in {c.size} bytes")
    return pointer.to_bytes(c.size, "little")


def run_loader(script: bytes, files: dict[str, bytes], high: int = 0x100000, fseg: int = 0xE0000,
               write_file: Callable[[str, int, bytes], None] | None = None) -> dict[str, tuple[int, bytearray]]:
    """Execute a script as firmware would: place each ALLOCATEd file (aligned, zone by zone from high/fseg), add
    pointee addresses, fix checksums, and hand each WRITE_POINTER's bytes to write_file(name, offset, data) (the
    firmware's fw_cfg DMA write; its destination must be in files). Returns name -> (guest address, patched
    bytes); ValueError for a bad script."""
    placed: dict[str, tuple[int, bytearray]] = {}
    cursor = {Zone.HIGH: high, Zone.FSEG: fseg}
    for c in decode(script):
        if isinstance(c, Allocate):
            if c.align & (c.align - 1) or c.file not in files:
                raise ValueError(f"ALLOCATE {c.file!r}: unknown file or alignment {c.align} not a power of two")
            gpa = -(-cursor[c.zone] // max(c.align, 1)) * max(c.align, 1)
            placed[c.file] = (gpa, bytearray(files[c.file]))
            cursor[c.zone] = gpa + len(files[c.file])
        elif isinstance(c, AddPointer):
            _, data = placed[c.pointer_file]
            if c.size not in (1, 2, 4, 8) or c.offset + c.size > len(data):
                raise ValueError(f"ADD_POINTER {c.pointer_file}+{c.offset} size {c.size} is out of bounds")
            value = int.from_bytes(data[c.offset:c.offset + c.size], "little") + placed[c.pointee_file][0]
            data[c.offset:c.offset + c.size] = (value & ((1 << (8 * c.size)) - 1)).to_bytes(c.size, "little")
        elif isinstance(c, WritePointer):
            if c.dest_file not in files:
                raise ValueError(f"WRITE_POINTER destination {c.dest_file!r} is not a fw_cfg file")
            value = write_pointer_value(c, placed, len(files[c.dest_file]))
            if write_file is None:
                raise ValueError(f"WRITE_POINTER {c.dest_file}: no fw_cfg to write back to")
            write_file(c.dest_file, c.dst_offset, value)
        else:
            _, data = placed[c.file]
            if c.start + c.length > len(data) or c.result_offset >= len(data):
                raise ValueError(f"ADD_CHECKSUM {c.file} range {c.start}+{c.length} is out of bounds")
            data[c.result_offset] = 0
            data[c.result_offset] = -sum(data[c.start:c.start + c.length]) & 0xFF
    return placed


def build_qemu_acpi(madt: bytes, hw: PcHardware) -> dict[str, bytes]:
    """The three fw_cfg files in QEMU's pc form: FACS (64-aligned, first), DSDT, FADT, MADT and an RSDT in one blob
    with table-relative pointers and zero checksums, an RSDP revision 0 in the FSEG, and the script joining them."""
    blob = bytearray()
    commands: list[LoaderCommand] = [Allocate(TABLES_FILE, 64, Zone.HIGH)]

    def add(table: bytes, pointers: tuple[tuple[int, int], ...] = (), checksum: bool = True) -> int:
        offset = len(blob)
        blob.extend(table)
        if checksum:
            blob[offset + 9] = 0
        commands.extend(AddPointer(TABLES_FILE, TABLES_FILE, offset + field, size) for field, size in pointers)
        if checksum:
            commands.append(AddChecksum(TABLES_FILE, offset + 9, offset, len(table)))
        return offset

    facs = add(build_facs(), checksum=False)
    dsdt = add(build_dsdt(hw))
    fadt = add(build_fadt(dsdt, hw, facs_gpa=facs), ((FADT_FACS, 4), (FADT_DSDT, 4), (FADT_X_DSDT, 8)))
    listed = [fadt, add(madt)]
    rsdt = add(build_rsdt(listed), tuple((36 + 4 * i, 4) for i in range(len(listed))))
    rsdp = bytearray(build_rsdp_v1(rsdt))
    rsdp[8] = 0
    commands += [Allocate(RSDP_FILE, 16, Zone.FSEG), AddPointer(RSDP_FILE, TABLES_FILE, RSDP_RSDT, 4),
                 AddChecksum(RSDP_FILE, 8, 0, len(rsdp))]
    return {TABLES_FILE: bytes(blob), RSDP_FILE: bytes(rsdp), LOADER_FILE: encode(commands)}

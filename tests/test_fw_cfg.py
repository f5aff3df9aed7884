"""fw_cfg: the device model against a bytearray RAM (ports, directory, DMA, malformed descriptors, hypothesis), the
item set pyvmm builds (QEMU's keys, e820, the ACPI table loader run as firmware runs it, kernel items), --fw-cfg,
and test guests reading it all by port I/O and by DMA under every kind of machine."""

from __future__ import annotations

import argparse
import random
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from chipset.fw_cfg import (DIR_ENTRY, DMA_ACCESS, DmaControl, FwCfg, FwCfgFile, FwCfgItems, Key, Offset,
                            directory)
from chipset.ram import FlatRam
from loaders.acpi import build_madt, checksum_ok, parse_table
from loaders.acpi.table_loader import (LOADER_FILE, RSDP_FILE, TABLES_FILE, Allocate, WritePointer, Zone,
                                       build_qemu_acpi, decode, encode, run_loader)
from tests.guests.run import fnv1a as fnv
from vmm.cli.errors import UsageError
from vmm.cli.options import parse_fw_cfg_option
from vmm.fw_cfg import e820_table, fw_cfg_items, linux_boot_items
from vmm.memory import ram_layout
from vmm.pc_layout import PC

USER = random.Random(7).randbytes(10_000)


def select(dev: FwCfg, key: int) -> None:
    dev.io_write(Offset.SELECTOR, 2, key)


def read(dev: FwCfg, key: int, n: int) -> bytes:
    select(dev, key)
    return dev.io_read_string(Offset.DATA, 1, n)


def be_port(value: int) -> int:
    """What io_write sees when a guest does outl(bswap32(value)): the big-endian bytes read little-endian."""
    return int.from_bytes(value.to_bytes(4, "big"), "little")


def dma(dev: FwCfg, ram: FlatRam, at: int, control: int, length: int, address: int, high: int = 0) -> int:
    ram.write(at, DMA_ACCESS.pack(control, length, address))
    if high:
        dev.io_write(Offset.DMA_HIGH, 4, be_port(high))
    dev.io_write(Offset.DMA_LOW, 4, be_port(at))
    return struct.unpack(">I", ram.read(at, 4))[0]


@pytest.fixture
def machine():
    ram = FlatRam([(0, 64 << 10), (128 << 10, 64 << 10)])        # a hole at 64-128 KiB
    items = FwCfgItems({Key.RAM_SIZE: struct.pack("<Q", 1 << 30), Key.IRQ0_OVERRIDE: struct.pack("<I", 1)},
                       [FwCfgFile("opt/b", b"bee"), FwCfgFile("opt/a", USER), FwCfgFile("etc/rw", bytes(16), True)])
    return FwCfg(ram, items), ram


# --- ports --------------------------------------------------------------------------------------------------------
def test_signature_id_and_dma_signature(machine):
    dev, _ = machine
    assert bytes(dev.io_read(Offset.DATA, 1) for _ in range(4)) == b"QEMU"    # reset selects the signature
    assert read(dev, Key.ID, 4) == struct.pack("<I", 3)
    sig = b"".join(dev.io_read(o, 4).to_bytes(4, "little") for o in (Offset.DMA_HIGH, Offset.DMA_LOW))
    assert sig == b"QEMU CFG"
    assert dev.io_read(Offset.DMA_HIGH + 1, 1) == ord("E")


def test_directory_is_sorted_big_endian_and_selects_match(machine):
    dev, _ = machine
    count = struct.unpack(">I", read(dev, Key.FILE_DIR, 4))[0]
    entries = [DIR_ENTRY.unpack(dev.io_read_string(Offset.DATA, 1, 64)) for _ in range(count)]
    assert [(e[3].rstrip(b"\0"), e[0], e[1]) for e in entries] == [(b"etc/rw", 16, 0x20), (b"opt/a", 10_000, 0x21),
                                                                   (b"opt/b", 3, 0x22)]
    assert read(dev, 0x21, 10_000) == USER and read(dev, 0x22, 3) == b"bee"


def test_reads_past_the_end_and_unknown_keys_are_zero(machine):
    dev, _ = machine
    assert read(dev, 0x22, 8) == b"bee" + bytes(5)
    assert dev.io_read(Offset.DATA, 1) == 0
    assert read(dev, 0x1FF, 4) == bytes(4) and read(dev, 0xFFFF, 2) == bytes(2)
    assert read(dev, 0x4000 | Key.RAM_SIZE, 8) == struct.pack("<Q", 1 << 30)    # legacy write flag ignored
    assert read(dev, Key.IRQ0_OVERRIDE, 4) == struct.pack("<I", 1)
    dev.io_write(Offset.DATA, 1, 0x55)                                         # ignored
    dev.io_write_string(Offset.DATA, 1, b"x" * 100)
    assert dev.io_read(Offset.SELECTOR, 2) == 0xFFFF and dev.io_read(2, 1) == 0xFF


# --- DMA ----------------------------------------------------------------------------------------------------------
def test_dma_select_read_skip_write(machine):
    dev, ram = machine
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.READ | 0x21 << 16, 100, 0x1000) == 0
    assert ram.read(0x1000, 100) == USER[:100]
    assert dma(dev, ram, 0x100, DmaControl.SKIP, 50, 0) == 0
    assert dma(dev, ram, 0x100, DmaControl.READ, 10, 0x2000) == 0
    assert ram.read(0x2000, 10) == USER[150:160]
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.READ | 0x22 << 16, 8, 0x3000) == 0
    assert ram.read(0x3000, 8) == b"bee" + bytes(5)                            # zero past the end
    ram.write(0x4000, b"0123456789abcdef")
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.WRITE | 0x20 << 16, 16, 0x4000) == 0
    assert read(dev, 0x20, 16) == b"0123456789abcdef"
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.SKIP | 0x20 << 16, 12, 0) == 0
    assert dma(dev, ram, 0x100, DmaControl.WRITE, 8, 0x4000) == DmaControl.ERROR    # would truncate
    assert dma(dev, ram, 0x100, DmaControl.WRITE, 4, 0x4000) == DmaControl.ERROR    # QEMU moved past the 4 left
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.SKIP | 0x20 << 16, 12, 0) == 0
    assert dma(dev, ram, 0x100, DmaControl.WRITE, 4, 0x4000) == 0
    assert read(dev, 0x20, 16) == b"0123456789ab0123"


@pytest.mark.parametrize("control,length,address", [
    (DmaControl.READ, 16, 0xFFF8),                       # crosses the hole after the first range
    (DmaControl.READ, 16, 0x10000),                      # in the hole
    (DmaControl.READ, 0xFFFFFFFF, 0x0),                  # absurd length
    (DmaControl.READ, 0x100, 2**64 - 0x10),              # wraps past 2**64
    (DmaControl.SELECT | DmaControl.WRITE | 0x21 << 16, 4, 0x1000),   # read-only file
    (DmaControl.SELECT | DmaControl.WRITE | 0x3FFF << 16, 4, 0x1000),  # absent key
    (DmaControl.SELECT | DmaControl.WRITE | 0x20 << 16, 16, 0x2FFF8),   # writable, source beyond RAM
])
def test_bad_dma_sets_error_and_touches_nothing(machine, control, length, address):
    dev, ram = machine
    ram.write(0x100, DMA_ACCESS.pack(control, length, address))
    before = [bytearray(buf) for _, buf in ram.ranges]
    dev.io_write(Offset.DMA_LOW, 4, be_port(0x100))
    before[0][0x100:0x104] = b"\0\0\0\1"                                          # only the control word changes
    assert [bytes(buf) for _, buf in ram.ranges] == before


def test_unreadable_descriptors_and_the_dma_register_reset(machine):
    dev, ram = machine
    ram.write(0xFFF8, b"\x11" * 8)
    dev.io_write(Offset.DMA_LOW, 4, be_port(0xFFF8))     # straddles the hole: ERROR lands where it fits (as QEMU)
    assert ram.read(0xFFF8, 8) == b"\x00\x00\x00\x01" + b"\x11" * 4
    dev.io_write(Offset.DMA_LOW, 4, be_port(0x10000))    # in the hole
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.READ, 4, 0x1000, high=1) == \
        DmaControl.SELECT | DmaControl.READ               # the descriptor at 4 GiB + 0x100 is not RAM: untouched
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.READ, 4, 0x1000) == 0   # high half was reset
    assert ram.read(0x1000, 4) == b"QEMU"


class WatchedRam(FlatRam):
    """Records every access the device makes that RAM accepted; rejected ones raise as the protocol says."""

    def __init__(self, ranges):
        super().__init__(ranges)
        self.touched: list[tuple[int, int]] = []

    def write(self, gpa, data):
        super().write(gpa, data)
        self.touched.append((gpa, len(data)))

    def zero(self, gpa, size):
        super().zero(gpa, size)
        self.touched.append((gpa, size))


ports = st.tuples(st.sampled_from([0, 1, 2, 4, 5, 8, 11]), st.sampled_from([1, 2, 4]), st.integers(0, 2**32 - 1),
                  st.booleans())
descriptors = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                        st.one_of(st.integers(0, 0x40000), st.integers(0, 2**64 - 1)),
                        st.one_of(st.integers(0, 0x40000), st.integers(0, 2**32 - 1)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(ports, descriptors), max_size=30))
def test_random_port_sequences_and_descriptors_never_escape(ops):
    ram = WatchedRam([(0, 64 << 10), (128 << 10, 64 << 10)])
    items = FwCfgItems({}, [FwCfgFile("opt/a", USER), FwCfgFile("etc/rw", bytes(32), True)])
    dev = FwCfg(ram, items)
    for op in ops:
        if len(op) == 4 and isinstance(op[3], bool):
            offset, size, value, is_write = op
            if is_write:
                dev.io_write(offset, size, value & ((1 << 8 * size) - 1))
            else:
                assert 0 <= dev.io_read(offset, size) < 1 << 8 * size
                assert len(dev.io_read_string(offset, size, 7)) == 7 * size
        else:
            control, length, address, at = op
            if ram.contains(at, 16):
                ram.write(at, DMA_ACCESS.pack(control, length, address % 2**64))
            dev.io_write(Offset.DMA_HIGH, 4, be_port(at >> 32))
            dev.io_write(Offset.DMA_LOW, 4, be_port(at & 0xFFFFFFFF))
            assert dev.dma_addr == 0
    assert all(ram.contains(gpa, n) for gpa, n in ram.touched)


# --- writable files and the table loader's WRITE_POINTER ---------------------------------------------------------
def test_writable_file_calls_on_write_and_other_writes_stay_errors():
    seen = []
    ram = FlatRam([(0, 64 << 10)])
    items = FwCfgItems({}, [FwCfgFile("etc/addr", bytes(8), True, lambda off, data: seen.append((off, data))),
                            FwCfgFile("etc/ro", bytes(8))])
    dev = FwCfg(ram, items)
    ram.write(0x2000, bytes(range(1, 9)))
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.SKIP | 0x20 << 16, 2, 0) == 0
    assert dma(dev, ram, 0x100, DmaControl.WRITE, 4, 0x2000) == 0
    assert seen == [(2, b"\1\2\3\4")] and dev.file_data("etc/addr") == b"\0\0\1\2\3\4\0\0"
    assert read(dev, 0x20, 8) == b"\0\0\1\2\3\4\0\0"
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.WRITE | 0x20 << 16, 9, 0x2000) == DmaControl.ERROR
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.WRITE | 0x21 << 16, 4, 0x2000) == DmaControl.ERROR
    assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.WRITE | 0x20 << 16, 4, 0x20000) == DmaControl.ERROR
    assert len(seen) == 1 and dev.file_data("etc/ro") == bytes(8)
    with pytest.raises(KeyError):
        dev.file_data("etc/none")
    with pytest.raises(ValueError, match="on_write needs a writable file"):
        FwCfgFile("etc/x", b"", on_write=lambda off, data: None)


def test_write_pointer_entry_is_qemus_layout():
    """Laid out by hand from QEMU's BiosLinkerLoaderEntry.wr_pointer: u32 command 4, dest_file[56], src_file[56],
    u32 dst_offset, u32 src_offset, u8 size, zero padding to 128 bytes."""
    entry = encode([WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 8)])
    want = bytearray(128)
    want[0:4] = (4).to_bytes(4, "little")
    want[4:4 + 16] = b"etc/vmgenid_addr"
    want[60:60 + 16] = b"etc/vmgenid_guid"
    want[116:120] = (0).to_bytes(4, "little")
    want[120:124] = (40).to_bytes(4, "little")
    want[124] = 8
    assert entry == bytes(want)
    assert decode(entry) == [WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 8)]
    for bad in (WritePointer("a", "b", 0, 0, 3), WritePointer("a", "b", -1, 0, 8), WritePointer("a", "b", 0, 2**32, 4)):
        with pytest.raises(ValueError):
            encode([bad])


def _vmgenid_files(size: int = 8) -> dict[str, bytes]:
    """QEMU's vmgenid shape: a 4 KiB blob holding the GUID at offset 40, and the writable address file."""
    guid = bytes(40) + bytes(range(16))
    return {"etc/vmgenid_guid": guid.ljust(4096, b"\0"), "etc/vmgenid_addr": bytes(size)}


def test_run_loader_write_pointer_goes_through_the_device():
    """The firmware model runs the script and writes by DMA (SELECT+SKIP, then WRITE) into the device."""
    files = _vmgenid_files()
    seen = []
    ram = FlatRam([(0, 1 << 20)])
    dev = FwCfg(ram, FwCfgItems({}, [FwCfgFile("etc/vmgenid_guid", files["etc/vmgenid_guid"]),
                                     FwCfgFile("etc/vmgenid_addr", bytes(8), True,
                                               lambda off, data: seen.append((off, data)))]))
    sel = {f.name: s for s, f in directory([FwCfgFile(n, d) for n, d in files.items()])[1]}

    def write_file(name: str, offset: int, data: bytes) -> None:
        ram.write(0x3000, data)
        assert dma(dev, ram, 0x100, DmaControl.SELECT | DmaControl.SKIP | sel[name] << 16, offset, 0) == 0
        assert dma(dev, ram, 0x100, DmaControl.WRITE, len(data), 0x3000) == 0
    script = encode([Allocate("etc/vmgenid_guid", 4096, Zone.HIGH),
                     WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 8)])
    placed = run_loader(script, files, high=0x7F001, write_file=write_file)
    assert placed["etc/vmgenid_guid"][0] == 0x80000
    assert seen == [(0, (0x80000 + 40).to_bytes(8, "little"))]
    assert dev.file_data("etc/vmgenid_addr") == (0x80028).to_bytes(8, "little")


@pytest.mark.parametrize("command,words", [
    (WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 4, 40, 8), "past its 8 bytes"),
    (WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 4096, 8), "outside etc/vmgenid_guid"),
    (WritePointer("etc/vmgenid_addr", "etc/none", 0, 0, 8), "was not ALLOCATEd"),
    (WritePointer("etc/none", "etc/vmgenid_guid", 0, 0, 8), "is not a fw_cfg file"),
    (WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 2), "does not fit in 2 bytes"),
])
def test_bad_write_pointer_is_refused(command, words):
    script = encode([Allocate("etc/vmgenid_guid", 4096, Zone.HIGH), command])
    with pytest.raises(ValueError, match=words):
        run_loader(script, _vmgenid_files(), high=0x100000, write_file=lambda *a: None)
    with pytest.raises(ValueError, match="no fw_cfg to write back to"):
        run_loader(encode([Allocate("etc/vmgenid_guid", 4096, Zone.HIGH),
                           WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 8)]), _vmgenid_files())


def _model_write(model: dict, control: int, length: int, address: int, ram: FlatRam) -> int:
    """QEMU's fw_cfg_dma_transfer for SELECT + SKIP/WRITE, written out separately from the device: the oracle."""
    if control & DmaControl.SELECT:
        model["key"], model["off"] = control >> 16, 0
    item = model["items"].get(model["key"] & 0x3FFF)
    if not length or not control & (DmaControl.WRITE | DmaControl.SKIP):
        return 0
    if item is None or model["off"] >= len(item[0]):
        return 0 if control & DmaControl.SKIP else DmaControl.ERROR
    n = min(length, len(item[0]) - model["off"])
    off = model["off"]
    model["off"] += n
    if control & DmaControl.SKIP:
        return 0
    if not item[1] or n != length or not ram.contains(address, length):
        return DmaControl.ERROR
    item[0][off:off + n] = ram.read(address, n)
    model["writes"].append((off, ram.read(address, n)))
    return 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0x20, 0x21, 0x22]),
                          st.sampled_from([DmaControl.WRITE, DmaControl.SKIP]), st.integers(0, 40),
                          st.sampled_from([0x1000, 0xFFF0, 0x10000, 2**64 - 8])), max_size=25))
def test_writes_to_writable_files_match_qemus_rules(ops):
    ram = FlatRam([(0, 64 << 10), (128 << 10, 64 << 10)])
    ram.write(0x1000, bytes(range(64)))
    writes = []
    dev = FwCfg(ram, FwCfgItems({}, [FwCfgFile("a/rw", bytes(24), True, lambda off, d: writes.append((off, d))),
                                     FwCfgFile("b/ro", bytes(16))]))
    model = {"key": 0, "off": 0, "writes": [], "items": {0x20: (bytearray(24), True), 0x21: (bytearray(16), False)}}
    for select, key, op, length, address in ops:
        control = op | (DmaControl.SELECT | key << 16 if select else 0)
        want = _model_write(model, control, length, address, ram)
        assert dma(dev, ram, 0x100, control, length, address) == want
        assert writes == model["writes"]
        assert dev.file_data("a/rw") == bytes(model["items"][0x20][0]) and dev.file_data("b/ro") == bytes(16)


# --- what pyvmm serves ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("memory,cpus", [(64 << 20, 1), (5 << 30, 4)])
def test_qemu_keys_and_e820(memory, cpus):
    items = fw_cfg_items(memory, cpus)
    dev = FwCfg(FlatRam([(0, 4096)]), items)
    assert read(dev, Key.RAM_SIZE, 8) == struct.pack("<Q", memory)
    assert read(dev, Key.NB_CPUS, 2) == read(dev, Key.MAX_CPUS, 2) == struct.pack("<H", cpus)
    assert read(dev, Key.NUMA, 8 * (1 + cpus) + 1) == bytes(8 * (1 + cpus) + 1)
    assert read(dev, Key.BOOT_MENU, 2) == bytes(2) and read(dev, Key.NOGRAPHIC, 2) == b"\1\0"
    assert read(dev, Key.UUID, 16) == bytes(16)
    assert read(dev, Key.IRQ0_OVERRIDE, 4) == b"\1\0\0\0"
    names = [f.name for f in items.files]
    assert sorted(names) == ["bootorder", "etc/acpi/rsdp", "etc/acpi/tables", "etc/boot-fail-wait", "etc/e820",
                             "etc/table-loader"]
    assert items.file("etc/boot-fail-wait").data == b"\xff" * 4 and items.file("bootorder").data == b""
    e820 = [struct.unpack_from("<QQI", e820_table(memory), i) for i in range(0, len(e820_table(memory)), 20)]
    assert [(a, s) for a, s, t in e820 if t == 1] == ram_layout(memory)
    assert [(a, s, t) for a, s, t in e820 if t != 1] == [(0xFEFFC000, 0x4000, 2)]     # QEMU's identity map and TSS


@pytest.mark.parametrize("cpus", [1, 3])
def test_table_loader_runs_like_firmware(cpus):
    files = build_qemu_acpi(build_madt(cpus, PC), PC)
    commands = decode(files[LOADER_FILE])
    assert commands[0] == Allocate(TABLES_FILE, 64, Zone.HIGH)
    assert Allocate(RSDP_FILE, 16, Zone.FSEG) in commands
    placed = run_loader(files[LOADER_FILE], files, high=0x7F00000)
    base, tables = placed[TABLES_FILE]
    rsdp_gpa, rsdp = placed[RSDP_FILE]
    assert 0xE0000 <= rsdp_gpa < 0x100000 and rsdp_gpa % 16 == 0 and base % 64 == 0
    assert rsdp[:8] == b"RSD PTR " and rsdp[15] == 0 and sum(rsdp[:20]) & 0xFF == 0

    def table(gpa: int) -> bytes:
        off = gpa - base
        length = struct.unpack_from("<I", tables, off + 4)[0]
        return bytes(tables[off:off + length])
    rsdt = table(struct.unpack_from("<I", rsdp, 16)[0])
    assert rsdt[:4] == b"RSDT" and checksum_ok(rsdt)
    listed = [table(g) for g in struct.unpack_from(f"<{(len(rsdt) - 36) // 4}I", rsdt, 36)]
    assert [t[:4] for t in listed] == [b"FACP", b"APIC"] and all(checksum_ok(t) for t in listed)
    fadt = listed[0]
    facs_gpa, dsdt_gpa = struct.unpack_from("<II", fadt, 36)
    assert struct.unpack_from("<Q", fadt, 140)[0] == dsdt_gpa
    assert tables[facs_gpa - base:facs_gpa - base + 4] == b"FACS" and facs_gpa % 64 == 0
    dsdt = table(dsdt_gpa)
    assert dsdt[:4] == b"DSDT" and checksum_ok(dsdt) and b"QEMU0002" in dsdt
    assert len([e for e in parse_table(listed[1]).entries if e["type"] == "local_apic"]) == cpus
    # the blob itself carries zero checksums and table-relative pointers, as QEMU's does
    assert files[TABLES_FILE][dsdt_gpa - base + 9] == 0 and files[RSDP_FILE][8] == 0


def test_user_file_options():
    assert parse_fw_cfg_option("name=opt/x,string=a,,b") == FwCfgFile("opt/x", b"a,b")
    for bad, words in [("name=etc/x,string=1", "under opt/"), ("string=1", "missing name"),
                       ("name=opt/x", "exactly one"), ("name=opt/x,string=1,file=/etc/hostname", "exactly one"),
                       ("name=opt/" + "x" * 52 + ",string=1", "at most 55"), ("name=opt/x,bogus=1", "is not name="),
                       ("name=opt/x,file=/nonexistent/f", "cannot read"), ("name=opt/,string=1", "under opt/")]:
        with pytest.raises(UsageError, match=words):
            parse_fw_cfg_option(bad)
    assert parse_fw_cfg_option("name=opt/" + "x" * 51 + ",string=1").name == "opt/" + "x" * 51
    with pytest.raises(ValueError, match="duplicate"):
        directory([FwCfgFile("opt/a", b""), FwCfgFile("opt/a", b"1")])
    with pytest.raises(ValueError, match="slots"):
        fw_cfg_items(64 << 20, 1, tuple(FwCfgFile(f"opt/{i}", b"") for i in range(27)))


def _pyvmm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmm", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,words", [
    (["--fw-cfg", "name=etc/e820,string=x"], "under opt/"),
    (["--fw-cfg", "name=opt/x,file=/nonexistent/f"], "cannot read /nonexistent/f"),
    (["--fw-cfg", "name=opt/x,string=1", "--fw-cfg", "name=opt/x,string=2"], "duplicate fw_cfg file name: opt/x"),
    (["--fw-cfg", "name=opt/" + "y" * 60 + ",string=1"], "at most 55"),
    (["--fw-cfg", "name=opt/x"], "exactly one of file=PATH or string=TEXT"),
])
def test_bad_fw_cfg_is_one_line_and_status_2(args, words):
    p = _pyvmm("--igvm", "/nonexistent.igvm", *args)
    assert p.returncode == 2 and p.stderr.startswith("pyvmm: error: --fw-cfg") and words in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_bzimage_items_follow_qemu():
    from tests.linux_images import make_bzimage
    kernel = make_bzimage(b"\x90" * 5000, setup_sects=20)
    keys, files = linux_boot_items(kernel, b"I" * 5000, "console=ttyS0", 256 << 20)
    u32 = lambda k: struct.unpack("<I", keys[k])[0]   # noqa: E731
    setup = 21 * 512
    assert (u32(Key.SETUP_ADDR), u32(Key.SETUP_SIZE), u32(Key.KERNEL_ADDR)) == (0x10000, setup, 0x100000)
    assert u32(Key.KERNEL_SIZE) == len(kernel) - setup and bytes(keys[Key.KERNEL_DATA]) == kernel[setup:]
    assert (u32(Key.CMDLINE_ADDR), u32(Key.CMDLINE_SIZE)) == (0x20000, 14)
    assert keys[Key.CMDLINE_DATA] == b"console=ttyS0\0"
    initrd_max = (256 << 20) - 0x28000 - 1               # xloadflags bit 1: only RAM and QEMU's ACPI room limit it
    assert u32(Key.INITRD_ADDR) == (initrd_max - 5000) & ~0xFFF and u32(Key.INITRD_SIZE) == 5000
    hdr = keys[Key.SETUP_DATA]
    assert len(hdr) == setup and hdr[0x210] == 0xB0 and hdr[0x211] & 0x81 == 0x81
    assert struct.unpack_from("<I", hdr, 0x228)[0] == 0x20000
    assert struct.unpack_from("<II", hdr, 0x218) == (u32(Key.INITRD_ADDR), 5000)
    assert struct.unpack_from("<H", hdr, 0x224)[0] == 0x20000 - 0x10000 - 0x200
    assert hdr[0x1F1:0x210] == kernel[0x1F1:0x210] and hdr[0x268:] == kernel[0x268:setup]
    assert [f.name for f in files] == ["etc/boot/kernel"] and bytes(files[0].data) == kernel


# --- guests -------------------------------------------------------------------------------------------------------
def expected_probe(items: FwCfgItems, kernel: dict | None = None) -> list[str]:
    """The lines fwcfg_probe.c prints for this item set on a machine (which adds the 32-byte etc/vmfwupdate)."""
    blob, pairs = directory(items.files + [FwCfgFile("etc/vmfwupdate", bytes(32))])
    user = items.file("opt/test").data
    out = ["dma_sig=QEMU CFG"]
    for mode in ("pio", "dma"):
        out += [f"{mode} sig=QEMU", f"{mode} id=0x3", f"{mode} count={len(pairs)}"]
        out += [f"{mode} file {sel:#x} {len(f.data)} {f.name}" for sel, f in pairs]
        out.append(f"{mode} opt/test size={len(user)} fnv={fnv(bytes(user)):#x}")
    out.append(f"dma skip control=0x0 fnv={fnv(bytes(user[100:116])):#x}")
    if kernel is None:
        out.append("kernel items=none")
    else:
        out.append(f"cmdline=[{kernel['cmdline']}]")
        for name in ("kernel", "setup", "initrd"):
            out.append(f"{name} size={len(kernel[name])} fnv={fnv(kernel[name]):#x}")
    return out


def test_guest_reads_fw_cfg_by_port_and_dma(guest):
    items = fw_cfg_items(64 << 20, 2, (FwCfgFile("opt/test", USER),))
    run = guest("start64.S", extra_sources=("fwcfg_probe.c",), fw_cfg=items, cpus=1)
    assert run.status == 0x21, run.text
    assert run.text.splitlines() == expected_probe(items)


def test_guest_fires_malformed_dma_and_the_vmm_still_serves(guest):
    run = guest("start64.S", extra_sources=("fwcfg_bad_dma.c",), defines={"RAM_END": 64 << 20})
    assert run.status == 0x21, run.text
    lines = run.text.splitlines()
    for what in ("outside-ram", "crossing-ram-end", "in-hole", "overflow", "huge-length", "write-readonly",
                 "write-absent"):
        assert f"{what} control=0x1" in lines
    for what in ("absent-key-reads-zero", "skip-huge", "no-op"):
        assert f"{what} control=0x0" in lines
    assert "nonzero=0" in lines and "high-half-set control=0xa" in lines and "inl-data=0xffffffff" in lines
    assert "tail=0x1000000 0x22222222" in lines              # ERROR stored where the 4 bytes fit, as QEMU
    assert lines[-1] == "good sig=QEMU control=0x0"


def test_guest_runs_the_table_loader_and_writes_a_pointer_back(guest):
    """A firmware-like guest runs etc/table-loader: QEMU's ACPI set plus a vmgenid-shaped WRITE_POINTER (and one
    aimed at a read-only file). The host sees the pointer through on_write; the guest reads it back; every file it
    placed hashes the same as run_loader's placement of the same script."""
    seen = []
    items = fw_cfg_items(64 << 20, 2)
    files = {f.name: bytes(f.data) for f in items.files} | _vmgenid_files()
    script = decode(files[LOADER_FILE]) + [Allocate("etc/vmgenid_guid", 4096, Zone.HIGH),
                                           WritePointer("etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 8),
                                           WritePointer("etc/e820", "etc/vmgenid_guid", 0, 0, 8)]
    files[LOADER_FILE] = encode(script)
    on_write = {"etc/vmgenid_addr": lambda off, data: seen.append((off, data))}
    items = FwCfgItems(items.keys, [FwCfgFile(n, d, n in on_write, on_write.get(n)) for n, d in files.items()])
    run = guest("start64.S", extra_sources=("fwcfg_loader.c",), fw_cfg=items, cpus=1)
    assert run.status == 0x21, run.text
    lines = run.text.splitlines()
    placed = run_loader(files[LOADER_FILE], files, high=0x2000000, fseg=0xE0000, write_file=lambda *a: None)
    guid_at = placed["etc/vmgenid_guid"][0]
    assert f"write_pointer etc/vmgenid_addr value={guid_at + 40:#x} skip=0x0 control=0x0" in lines
    assert f"readback etc/vmgenid_addr value={guid_at + 40:#x}" in lines
    assert seen == [(0, (guid_at + 40).to_bytes(8, "little"))]
    assert f"write_pointer etc/e820 value={guid_at:#x} skip=0x0 control=0x1" in lines    # read-only: ERROR
    assert f"readback etc/e820 value={int.from_bytes(files['etc/e820'][:8], 'little'):#x}" in lines
    assert [x for x in lines if x.startswith("allocate")] == \
        [f"allocate {c.file} control=0x0" for c in script if isinstance(c, Allocate)]
    want = sorted(f"file {name} at={gpa:#x} fnv={fnv(bytes(data)):#x}" for name, (gpa, data) in placed.items())
    assert sorted(x for x in lines if x.startswith("file ")) == want
    assert not [x for x in lines if x.startswith("bad")]


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory, toolchain_ok):
    from loaders.igvm.pack import pack_flat_image
    from tests.guests.build import build
    from tests.linux_images import BZIMAGE_ENTRY, make_bzimage
    d = tmp_path_factory.mktemp("fwcfg")
    (d / "probe.igvm").write_bytes(pack_flat_image(build("start64.S", extra_sources=("fwcfg_probe.c",))))
    (d / "bzImage").write_bytes(make_bzimage(build("linux_start.S", extra_sources=("fwcfg_probe.c",),
                                                   load_addr=BZIMAGE_ENTRY)))
    (d / "initrd").write_bytes(random.Random(3).randbytes(3000))
    (d / "user").write_bytes(USER)
    return d


@pytest.mark.usefixtures("kvm_ok")
@pytest.mark.parametrize("how", ["igvm", "uefi", "linux", "kernel"])
def test_every_machine_has_fw_cfg(probe_files, how):
    d = probe_files
    common = ["-m", "128M", "--no-reboot", "--timeout", "60", "--fw-cfg", f"name=opt/test,file={d / 'user'}"]
    if how == "kernel":
        boot = ["--kernel", str(d / "bzImage"), "--initrd", str(d / "initrd"), "--cmdline", "fw cfg"]
    elif how == "linux":
        built = _pyvmm("igvm", "build-linux", "--kernel", str(d / "bzImage"), "-o", str(d / "linux.igvm"))
        assert built.returncode == 0, built.stderr
        boot = ["--igvm", f"type=linux,path={d / 'linux.igvm'}"]
    else:
        boot = ["--igvm", str(d / "probe.igvm") if how == "igvm" else f"type=uefi,path={d / 'probe.igvm'}"]
    p = _pyvmm(*boot, *common, "--serial", "stdio", timeout=90)
    assert p.returncode == 0x21, p.stderr + p.stdout
    kernel = None
    items = fw_cfg_items(128 << 20, 1, (FwCfgFile("opt/test", USER),))
    if how == "kernel":
        raw = (d / "bzImage").read_bytes()
        keys, files = linux_boot_items(raw, (d / "initrd").read_bytes(), "fw cfg", 128 << 20)
        items = fw_cfg_items(128 << 20, 1, (FwCfgFile("opt/test", USER),), keys, files)
        kernel = {"cmdline": "fw cfg", "kernel": bytes(keys[Key.KERNEL_DATA]), "setup": keys[Key.SETUP_DATA],
                  "initrd": (d / "initrd").read_bytes()}
    lines = p.stdout.splitlines()
    assert lines[:len(expected_probe(items, kernel))] == expected_probe(items, kernel)
    if kernel:
        assert lines[-1] == "kernel_addr=0x100000 setup_addr=0x10000 cmdline_addr=0x20000 initrd_addr=" + \
            hex(((128 << 20) - 0x28000 - 1 - 3000) & ~0xFFF)


def test_vmlinux_items_are_the_pvh_form(toolchain_ok, tmp_path):
    """QEMU's -kernel with an ELF (hw/i386/x86-common.c, load_elfboot): the whole file as kernel data, no setup, and
    KERNEL_ENTRY = the PVH entry from the XEN_ELFNOTE_PHYS32_ENTRY note; GNU nm names the entry's address."""
    from loaders.linux.kernel import parse_kernel
    from tests.linux_images import probe_vmlinux
    kernel = probe_vmlinux(pvh=True)
    (tmp_path / "vmlinux").write_bytes(kernel)
    nm = subprocess.run(["nm", str(tmp_path / "vmlinux")], capture_output=True, text=True, check=True).stdout
    pvh_start = next(int(line.split()[0], 16) for line in nm.splitlines() if line.endswith(" pvh_start"))
    parsed = parse_kernel(kernel)
    keys, files = linux_boot_items(kernel, None, "", 256 << 20)
    assert struct.unpack("<I", keys[Key.KERNEL_ENTRY])[0] == pvh_start
    assert struct.unpack("<I", keys[Key.KERNEL_ADDR])[0] == min(s.gpa for s in parsed.segments)
    assert bytes(keys[Key.KERNEL_DATA]) == kernel and struct.unpack("<I", keys[Key.KERNEL_SIZE])[0] == len(kernel)
    assert keys[Key.SETUP_DATA] == b"" and keys[Key.CMDLINE_DATA] == b"\0" and Key.INITRD_DATA not in keys
    # Without the note there is no PVH entry to give: no KERNEL_ENTRY item at all.
    keys, _ = linux_boot_items(probe_vmlinux(), None, "", 256 << 20)
    assert Key.KERNEL_ENTRY not in keys and Key.KERNEL_DATA in keys


def test_initrd_too_large_for_low_ram_is_refused():
    from loaders.errors import LoadError
    from tests.linux_images import make_bzimage
    with pytest.raises(LoadError, match="initrd is too large"):
        linux_boot_items(make_bzimage(b"\x90" * 100), bytes(16 << 20), "", 16 << 20)


@pytest.mark.usefixtures("kvm_ok")
def test_run_igvm_takes_fw_cfg_files(probe_files):
    from vmm.api import run_igvm
    out = run_igvm(probe_files / "probe.igvm", memory="64M", fw_cfg={"opt/test": USER}, timeout=30)
    assert out.status == 0x21, out.text
    items = fw_cfg_items(64 << 20, 1, (FwCfgFile("opt/test", USER),))
    assert out.text.splitlines() == expected_probe(items)

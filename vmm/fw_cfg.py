"""What pyvmm's fw_cfg serves, as QEMU's pc machine fills it (specs/chipset-fwcfg-linux-boot.md 1.3, 1.6, 1.8):
the fixed keys, etc/e820, bootorder, etc/boot-fail-wait, ACPI through the table loader, the direct-boot kernel
items for --kernel, and the user's --fw-cfg files."""

from __future__ import annotations

import struct

from chipset.fw_cfg import MAX_NAME, FwCfgFile, FwCfgItems, Key, directory
from chipset.vmfwupdate import FILE_NAME as VMFWUPDATE_FILE
from loaders.acpi import build_madt
from loaders.acpi.table_loader import build_qemu_acpi
from loaders.errors import LoadError

from .cli import UsageError
from .linux import E820_RAM, E820_RESERVED
from .memory import MMIO_HOLE_START, ram_layout

KVM_RESERVED = (0xFFFBC000, 0x4000)   # pyvmm's KVM identity map + TSS pages (QEMU reserves its own the same way)
HPET_CONFIG_SIZE = 1 + 8 * 15         # struct hpet_fw_config: count, 8 x {u32 id, u64 address, u16 tick, u8 prot}
BOOT_FAIL_WAIT = 0xFFFFFFFF           # -1: no reboot timeout
ACPI_DATA_SIZE = 0x20000 + 0x8000     # what QEMU's pc keeps free below the top of low RAM for ACPI
HDRS = 0x53726448
QEMU_LOADER_ID = 0xB0


def _u16(v: int) -> bytes:
    return struct.pack("<H", v)


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def e820_table(memory: int) -> bytes:
    """etc/e820: the RAM ranges (type 1) and the KVM pages (type 2), packed 20-byte {addr, size, type} entries."""
    entries = [(gpa, size, E820_RAM) for gpa, size in ram_layout(memory)] + [(*KVM_RESERVED, E820_RESERVED)]
    return b"".join(struct.pack("<QQI", *e) for e in entries)


def fw_cfg_items(memory: int, cpus: int, files: tuple[FwCfgFile, ...] = (),
                 kernel_keys: dict[int, bytes | memoryview] | None = None,
                 kernel_files: tuple[FwCfgFile, ...] = (), vmfwupdate: bool = True) -> FwCfgItems:
    """The whole item set for a machine; ValueError for duplicate file names or too many files.

    With vmfwupdate a slot is kept for etc/vmfwupdate, which each machine adds with its own device model."""
    keys: dict[int, bytes | memoryview] = {
        Key.UUID: bytes(16),
        Key.RAM_SIZE: struct.pack("<Q", memory),
        Key.NOGRAPHIC: _u16(1),
        Key.NB_CPUS: _u16(cpus),
        Key.MAX_CPUS: _u16(cpus),
        Key.BOOT_MENU: _u16(0),
        Key.NUMA: bytes(8 * (1 + cpus)),          # no nodes: count 0, then one node id per APIC id
        Key.IRQ0_OVERRIDE: _u32(1),
        Key.HPET: bytes(HPET_CONFIG_SIZE),
    }
    keys.update(kernel_keys or {})
    acpi = build_qemu_acpi(build_madt(cpus))
    base = [FwCfgFile("etc/boot-fail-wait", _u32(BOOT_FAIL_WAIT)), FwCfgFile("etc/e820", e820_table(memory)),
            FwCfgFile("bootorder", b"")] + [FwCfgFile(name, data) for name, data in acpi.items()]
    items = FwCfgItems(keys, base + list(kernel_files) + list(files))
    reserved = [FwCfgFile(VMFWUPDATE_FILE, bytes(32))] if vmfwupdate else []
    directory(items.files + reserved)             # duplicates / slots checked now, not when a machine starts
    return items


# --- --fw-cfg name=opt/NAME,file=PATH|string=TEXT -------------------------------------------------------------
def _split_options(text: str) -> list[str]:
    """QEMU option syntax: commas separate key=value pairs, a doubled comma is a literal one."""
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1:i + 2] == ",":
                cur.append(",")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


def parse_fw_cfg_option(text: str) -> FwCfgFile:
    """One --fw-cfg value as a file item; UsageError (one line) for anything QEMU would refuse."""
    where = f"--fw-cfg {text!r}"
    values: dict[str, str] = {}
    for part in _split_options(text):
        key, eq, value = part.partition("=")
        if not eq or key not in ("name", "file", "string"):
            raise UsageError(f"{where}: {part!r} is not name=, file= or string=")
        if key in values:
            raise UsageError(f"{where}: {key}= given twice")
        values[key] = value
    name = values.get("name", "")
    if not name:
        raise UsageError(f"{where}: missing name=opt/NAME")
    if bool(values.get("file")) == bool(values.get("string")):
        raise UsageError(f"{where}: give exactly one of file=PATH or string=TEXT")
    if len(name.encode()) > MAX_NAME:
        raise UsageError(f"{where}: name is {len(name.encode())} bytes, fw_cfg allows at most {MAX_NAME}")
    if not name.startswith("opt/") or len(name) == 4:
        raise UsageError(f"{where}: user fw_cfg names go under opt/ (e.g. name=opt/org.example/config)")
    if "string" in values:
        return FwCfgFile(name, values["string"].encode())
    from .igvm_cli import read_file
    try:
        return FwCfgFile(name, read_file(values["file"]))
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None


def user_files(options: list[str]) -> tuple[FwCfgFile, ...]:
    """Every --fw-cfg, duplicate names refused as QEMU does."""
    files = tuple(parse_fw_cfg_option(o) for o in options)
    seen: set[str] = set()
    for f in files:
        if f.name in seen:
            raise UsageError(f"--fw-cfg: duplicate fw_cfg file name: {f.name}")
        seen.add(f.name)
    return files


# --- direct kernel boot (QEMU's x86_load_linux) ---------------------------------------------------------------
def linux_boot_items(kernel: bytes, initrd: bytes | None, cmdline: str,
                     memory: int) -> tuple[dict[int, bytes | memoryview], tuple[FwCfgFile, ...]]:
    """The kernel/setup/initrd/cmdline keys and etc/boot/kernel as QEMU fills them for -kernel/-initrd/-append.

    A bzImage gets the patched setup sectors and the protected-mode part; an ELF vmlinux the PVH form
    (entry from its note, lowest load address, the whole file). LoadError when the initrd cannot fit."""
    from loaders.linux.kernel import parse_kernel
    parsed = parse_kernel(kernel)
    cmd = cmdline.encode()
    below_4g = min(memory, MMIO_HOLE_START)
    keys: dict[int, bytes | memoryview] = {Key.CMDLINE_SIZE: _u32(len(cmd) + 1), Key.CMDLINE_DATA: cmd + b"\0"}
    whole = memoryview(kernel)
    is_bzimage = len(kernel) >= 0x206 and struct.unpack_from("<I", kernel, 0x202)[0] == HDRS
    protocol = struct.unpack_from("<H", kernel, 0x206)[0] if is_bzimage else 0
    initrd_max = below_4g - ACPI_DATA_SIZE - 1
    if is_bzimage:
        header = bytearray(kernel[:8192])
        real, cmd_addr, prot = 0x10000, 0x20000, 0x100000
        if protocol >= 0x20C and struct.unpack_from("<H", header, 0x236)[0] & 2:
            limit = 0xFFFFFFFF
        else:
            limit = struct.unpack_from("<I", header, 0x22C)[0] if protocol >= 0x203 else 0x37FFFFFF
        initrd_max = min(limit, initrd_max)
        keys[Key.CMDLINE_ADDR] = _u32(cmd_addr)
        struct.pack_into("<I", header, 0x228, cmd_addr)
        header[0x210] = QEMU_LOADER_ID
        header[0x211] |= 0x80                                        # CAN_USE_HEAP
        struct.pack_into("<H", header, 0x224, cmd_addr - real - 0x200)
    if initrd is not None:
        if len(initrd) > initrd_max:
            raise LoadError(f"initrd is too large for fw_cfg: {len(initrd):#x} bytes, at most {initrd_max:#x}")
        initrd_addr = (initrd_max - len(initrd)) & ~0xFFF
        keys.update({Key.INITRD_ADDR: _u32(initrd_addr), Key.INITRD_SIZE: _u32(len(initrd)),
                     Key.INITRD_DATA: initrd})
        if is_bzimage:
            struct.pack_into("<II", header, 0x218, initrd_addr, len(initrd))
    if is_bzimage:
        setup_size = ((kernel[0x1F1] or 4) + 1) * 512
        n = min(8192, setup_size)
        keys.update({Key.KERNEL_ADDR: _u32(prot), Key.KERNEL_SIZE: _u32(len(kernel) - setup_size),
                     Key.KERNEL_DATA: whole[setup_size:], Key.SETUP_ADDR: _u32(real),
                     Key.SETUP_SIZE: _u32(setup_size), Key.SETUP_DATA: bytes(header[:n]) + kernel[n:setup_size]})
    else:
        keys.update({Key.KERNEL_ADDR: _u32(min(s.gpa for s in parsed.segments)), Key.KERNEL_SIZE: _u32(len(kernel)),
                     Key.KERNEL_DATA: whole, Key.SETUP_SIZE: _u32(0), Key.SETUP_DATA: b""})
        if parsed.pvh_entry is not None:
            keys[Key.KERNEL_ENTRY] = _u32(parsed.pvh_entry)
    return keys, (FwCfgFile("etc/boot/kernel", whole),)

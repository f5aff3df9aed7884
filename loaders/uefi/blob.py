"""OpenVMM's UEFI config blob (OpenVMM vm/loader/src/uefi/config.rs, written by
openvmm_core/src/worker/vm_loaders/uefi.rs `load_uefi`): typed structures, 8-byte padded, the count header patched
last. Built from a plain machine description; parsed back with the firmware's own checks (mu_msvm
MsvmPkg/PlatformPei/Config.c `GetUefiConfigInfo`).

Two flags are decided here rather than copied:

* `mtrrs_initialized_at_load`: OpenVMM's `load_uefi` always sets it, because its loader always programs the BSP's
  MTRRs itself (MtrrDefType 0xC00 and the low fixed ranges write-back, vm/loader/src/uefi/mod.rs). pyvmm sets it
  unless the file's own VP context switches the MTRRs off: every pyvmm vCPU starts with MTRR_DEF_TYPE enabled
  (default write-back) before the file's registers apply, so the MTRRs are initialized at load in every other case,
  and with the flag clear mu_msvm would ask its BIOS device (I/O 0x28, which pyvmm does not emulate) to program
  the variable MTRRs (PlatformPei/Platform.c, BiosConfigBootFinalize). See `mtrrs_initialized_at_load`.
* The Gic structure (0x23) is an AArch64 one (two GIC base addresses, read by mu_msvm only on AArch64); an x86-64
  machine never gets one, but the writer and parser know its shape so a blob carrying one is read correctly.
"""

from __future__ import annotations

import struct

from ..errors import LoadError
from ..named import Named
from ..record import field, record
from ..x86 import MTRR_DEF_TYPE_ENABLE


class BlobType(Named):
    STRUCTURE_COUNT = 0x00
    BIOS_INFORMATION = 0x01
    SRAT = 0x02
    MEMORY_MAP = 0x03
    ENTROPY = 0x04
    BIOS_GUID = 0x05
    SMBIOS_SYSTEM_SERIAL_NUMBER = 0x06
    SMBIOS_BASE_SERIAL_NUMBER = 0x07
    SMBIOS_CHASSIS_SERIAL_NUMBER = 0x08
    SMBIOS_CHASSIS_ASSET_TAG = 0x09
    SMBIOS_BIOS_LOCK_STRING = 0x0A
    SMBIOS31_PROCESSOR_INFORMATION = 0x0B
    SMBIOS_SOCKET_DESIGNATION = 0x0C
    SMBIOS_PROCESSOR_MANUFACTURER = 0x0D
    SMBIOS_PROCESSOR_VERSION = 0x0E
    SMBIOS_PROCESSOR_SERIAL_NUMBER = 0x0F
    SMBIOS_PROCESSOR_ASSET_TAG = 0x10
    SMBIOS_PROCESSOR_PART_NUMBER = 0x11
    FLAGS = 0x12
    PROCESSOR_INFORMATION = 0x13
    MMIO_RANGES = 0x14
    AARCH64_MPIDR = 0x15
    ACPI_TABLE = 0x16
    NVDIMM_COUNT = 0x17
    MADT = 0x18
    VPCI_INSTANCE_FILTER = 0x19
    SMBIOS_SYSTEM_MANUFACTURER = 0x1A
    SMBIOS_SYSTEM_PRODUCT_NAME = 0x1B
    SMBIOS_SYSTEM_VERSION = 0x1C
    SMBIOS_SYSTEM_SKU_NUMBER = 0x1D
    SMBIOS_SYSTEM_FAMILY = 0x1E
    SMBIOS_MEMORY_DEVICE_SERIAL_NUMBER = 0x1F
    SLIT = 0x20
    ASPT = 0x21
    PPTT = 0x22
    GIC = 0x23
    MCFG = 0x24
    SSDT = 0x25
    HMAT = 0x26
    IORT = 0x27
    PCIE_BAR_APERTURES = 0x28


class Flags(Named):
    """config::Flags bit positions (single-bit fields; console and memory_protection are 2-bit fields)."""
    SERIAL_CONTROLLERS_ENABLED = 1 << 0
    PAUSE_AFTER_BOOT_FAILURE = 1 << 1
    PXE_IP_V6 = 1 << 2
    DEBUGGER_ENABLED = 1 << 3
    LOAD_OEMP_TABLE = 1 << 4
    TPM_ENABLED = 1 << 5
    HIBERNATE_ENABLED = 1 << 6
    MEMORY_ATTRIBUTES_TABLE_ENABLED = 1 << 9
    VIRTUAL_BATTERY_ENABLED = 1 << 10
    SGX_MEMORY_ENABLED = 1 << 11
    IS_VMBFS_BOOT = 1 << 12
    MEASURE_ADDITIONAL_PCRS = 1 << 13
    DISABLE_FRONTPAGE = 1 << 14
    DEFAULT_BOOT_ALWAYS_ATTEMPT = 1 << 15
    LOW_POWER_S0_IDLE_ENABLED = 1 << 16
    VPCI_BOOT_ENABLED = 1 << 17
    PROC_IDLE_ENABLED = 1 << 18
    DISABLE_SHA384_PCR = 1 << 19
    MEDIA_PRESENT_ENABLED_BY_DEFAULT = 1 << 20
    ENABLE_IMC_WHEN_ISOLATED = 1 << 23
    WATCHDOG_ENABLED = 1 << 24
    TPM_LOCALITY_REGS_ENABLED = 1 << 25
    DHCP6_LINK_LAYER_ADDRESS = 1 << 26
    CXL_MEMORY_ENABLED = 1 << 27
    MTRRS_INITIALIZED_AT_LOAD = 1 << 28
    VMBUS_DISABLED = 1 << 30
    PCI_RESOURCES_PRE_ASSIGNED = 1 << 31
    FORCE_DMA_BOUNCE_ENABLED = 1 << 32


CONSOLE_SHIFT, MEMORY_PROTECTION_SHIFT = 7, 21
CONSOLE_DEFAULT, CONSOLE_COM1, CONSOLE_COM2, CONSOLE_NONE = 0, 1, 2, 3

HEADER = struct.Struct("<II")
MEMORY_RANGE = struct.Struct("<QQII")    # MemoryRangeV5
GIC = struct.Struct("<QQ")               # config::Gic: gic_distributor_base (GICD), gic_redistributors_base (GICR)

# Fixed total lengths (header included) the firmware enforces, and the structures it requires.
# Gic: mu_msvm's length table says 0 (unchecked) yet it reads both u64s, so anything but header + 16 bytes would
# make it read past the structure; pyvmm refuses that.
FIXED_LENGTHS = {0x00: 16, 0x01: 16, 0x04: 72, 0x05: 24, 0x0B: 32, 0x12: 16, 0x13: 24, 0x14: 40, 0x17: 16,
                 0x19: 24, 0x23: 8 + GIC.size}
REQUIRED = (BlobType.BIOS_INFORMATION, BlobType.MEMORY_MAP, BlobType.ENTROPY, BlobType.BIOS_GUID, BlobType.FLAGS,
            BlobType.PROCESSOR_INFORMATION, BlobType.MMIO_RANGES)
# The types mu_msvm hands on as ACPI tables (Config.c: Madt, Srat, Slit, Pptt, Hmat, AcpiTable, Aspt on x64, Mcfg,
# Ssdt, Iort). Gic (0x23) and PcieBarApertures (0x28) are structures of their own.
ACPI_TYPES = frozenset({0x02, 0x16, 0x18, 0x20, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27})
BIOS_SIZE_PAGES = 0x600


@record
class UefiMachine:
    """Everything the blob describes, as plain values (the VMM fills it; tests build it by hand)."""
    cpus: int
    ram: list[tuple[int, int]]
    entropy: bytes
    bios_guid: bytes
    acpi_tables: list[bytes] = field(default_factory=list)   # MADT, SRAT, SLIT, PPTT... in the spec's order
    mmio: tuple[tuple[int, int], tuple[int, int]] = ((0xC0000000, 0x40000000), (1 << 32, 0))
    serial: bool = True
    console: int = CONSOLE_COM1
    mtrrs_initialized: bool = True          # see mtrrs_initialized_at_load
    frontpage: bool = False
    vmbus: bool = False
    gic: tuple[int, int] | None = None      # (distributor, redistributors) bases: AArch64 only, None on x86-64


def mtrrs_initialized_at_load(file_mtrr_def_type: int | None) -> bool:
    """The flag's value for a launch whose file sets MTRR_DEF_TYPE to this value (None: the file leaves it alone).

    Every pyvmm vCPU starts with the MTRRs enabled before the file's registers apply, so only a file that writes
    MTRR_DEF_TYPE with E clear leaves them uninitialized at load; then the firmware must program them itself."""
    return file_mtrr_def_type is None or bool(file_mtrr_def_type & MTRR_DEF_TYPE_ENABLE)


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def flags_for(machine: UefiMachine) -> int:
    f = Flags.HIBERNATE_ENABLED | Flags.PCI_RESOURCES_PRE_ASSIGNED
    if machine.serial:
        f |= Flags.SERIAL_CONTROLLERS_ENABLED
    if machine.mtrrs_initialized:
        f |= Flags.MTRRS_INITIALIZED_AT_LOAD
    if not machine.frontpage:
        f |= Flags.DISABLE_FRONTPAGE
    if not machine.vmbus:
        f |= Flags.VMBUS_DISABLED
    return int(f) | (machine.console & 3) << CONSOLE_SHIFT


class _Blob:
    def __init__(self) -> None:
        self.parts: list[bytes] = [bytes(16)]    # StructureCount, patched in complete()
        self.count = 1

    def add(self, typ: int, payload: bytes) -> None:
        padded = payload + bytes(-len(payload) % 8)
        self.parts.append(HEADER.pack(typ, 8 + len(padded)) + padded)
        self.count += 1

    def complete(self) -> bytes:
        size = sum(len(p) for p in self.parts)
        self.parts[0] = HEADER.pack(BlobType.STRUCTURE_COUNT, 16) + struct.pack("<II", self.count, size)
        return b"".join(self.parts)


def build_config_blob(machine: UefiMachine) -> bytes:
    """The blob OpenVMM's load_uefi writes, in its order (OpenVMM vm/loader/src/uefi/mod.rs)."""
    if len(machine.entropy) != 64 or len(machine.bios_guid) != 16:
        raise ValueError("entropy must be 64 bytes and the BIOS GUID 16")
    b = _Blob()
    b.add(BlobType.BIOS_INFORMATION, struct.pack("<II", BIOS_SIZE_PAGES, 0))
    b.add(BlobType.MEMORY_MAP, b"".join(MEMORY_RANGE.pack(g, s, 0, 0) for g, s in sorted(machine.ram)))
    b.add(BlobType.BIOS_GUID, machine.bios_guid)
    b.add(BlobType.ENTROPY, machine.entropy)
    (lo, lo_len), (hi, hi_len) = machine.mmio
    b.add(BlobType.MMIO_RANGES, struct.pack("<4Q", lo >> 12, lo_len >> 12, hi >> 12, hi_len >> 12))
    b.add(BlobType.PROCESSOR_INFORMATION, struct.pack("<4I", machine.cpus, machine.cpus, _next_pow2(machine.cpus), 1))
    b.add(BlobType.FLAGS, struct.pack("<Q", flags_for(machine)))
    if machine.gic is not None:
        b.add(BlobType.GIC, GIC.pack(*machine.gic))
    for table in machine.acpi_tables:
        b.add(BlobType.ACPI_TABLE, table)
    return b.complete()


def volatile_ranges(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the payloads that differ per launch (entropy, BIOS GUID): `igvm plan` masks them."""
    return [(off + 8, length - 8) for typ, off, length in _walk(blob) if typ in (BlobType.ENTROPY, BlobType.BIOS_GUID)]


def _walk(blob: bytes | memoryview) -> list[tuple[int, int, int]]:
    out = []
    pos = 0
    while pos + 8 <= len(blob):
        typ, length = HEADER.unpack_from(blob, pos)
        if length <= 8 or length % 8 or pos + length > len(blob):
            raise LoadError(f"config blob structure at offset {pos:#x} (type {typ:#x}) has bad length {length}")
        out.append((typ, pos, length))
        pos += length
    return out


@record
class ParsedBlob:
    structures: list[tuple[int, bytes]]       # (type, payload without padding removed)

    def first(self, typ: int) -> bytes:
        for t, p in self.structures:
            if t == typ:
                return p
        raise KeyError(typ)

    def memory_map(self) -> list[tuple[int, int, int]]:
        p = self.first(BlobType.MEMORY_MAP)
        return [MEMORY_RANGE.unpack_from(p, o)[:3] for o in range(0, len(p), MEMORY_RANGE.size)]

    def processor_information(self) -> tuple[int, int, int, int]:
        return struct.unpack("<4I", self.first(BlobType.PROCESSOR_INFORMATION))

    def flags(self) -> int:
        return struct.unpack("<Q", self.first(BlobType.FLAGS))[0]

    def gic(self) -> tuple[int, int] | None:
        """(distributor, redistributors) bases, or None when the blob has no Gic structure."""
        p = next((p for t, p in self.structures if t == BlobType.GIC), None)
        return None if p is None else GIC.unpack(p)

    def acpi_tables(self) -> list[bytes]:
        return [p[:struct.unpack_from("<I", p, 4)[0]] for t, p in self.structures if t in ACPI_TYPES]


def parse_config_blob(data: bytes | bytearray | memoryview) -> ParsedBlob:
    """Walk and validate a blob as the firmware does (GetUefiConfigInfo): LoadError naming the first problem."""
    data = bytes(data)
    if len(data) < 16:
        raise LoadError("config blob is shorter than its 16-byte structure count")
    typ, length = HEADER.unpack_from(data, 0)
    count, size = struct.unpack_from("<II", data, 8)
    if typ != 0 or length != 16:
        raise LoadError("config blob does not start with a 16-byte StructureCount")
    if count <= 1:
        raise LoadError(f"config blob structure count {count} must be above 1")
    if size > len(data):
        raise LoadError(f"config blob says it is {size} bytes but only {len(data)} are there")
    walked = _walk(data[:size])
    if sum(length for _, _, length in walked) != size:
        raise LoadError(f"config blob structures add up to {sum(l for _, _, l in walked)} bytes, not {size}")
    if len(walked) != count:
        raise LoadError(f"config blob holds {len(walked)} structures, its count says {count}")
    out = []
    for typ, off, length in walked[1:]:
        fixed = FIXED_LENGTHS.get(typ)
        if fixed is not None and length != fixed:
            raise LoadError(f"config blob structure {BlobType(typ).name} at {off:#x} is {length} bytes, must be {fixed}")
        payload = data[off + 8:off + length]
        if typ in ACPI_TYPES:
            if length < 8 + 36 or struct.unpack_from("<I", payload, 4)[0] > length - 8:
                raise LoadError(f"config blob ACPI structure at {off:#x} does not hold its table")
        out.append((typ, payload))
    present = {t for t, _ in out}
    missing = [t.name for t in REQUIRED if t not in present]
    if missing:
        raise LoadError(f"config blob lacks required structures: {', '.join(missing)}")
    return ParsedBlob(out)

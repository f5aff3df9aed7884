"""ACPI table builders matching what the in-kernel KVM irqchip presents (one IOAPIC, a PIC); where the devices
are comes in as a PcHardware value (loaders.pc), never from a copy here.

Layouts follow the ACPI 6.x specification; the entry order and contents follow OpenVMM's builder (its spec
section 5) so an IGVM payload written for OpenVMM sees the same topology here.
"""

from __future__ import annotations

import struct
from ..record import record

from ..pc import PcHardware

HEADER = struct.Struct("<4sIBB6s8sI4sI")   # signature, length, revision, checksum, OEM id, table id, rev, creator
HEADER_SIZE = HEADER.size                    # 36


@record(frozen=True)
class AcpiHeaderIds:
    """The identification fields of every table pyvmm builds."""
    oem_id: bytes = b"PYVMM "
    oem_table_id: bytes = b"PYVMMTBL"
    oem_revision: int = 1
    creator_id: bytes = b"PYVM"
    creator_revision: int = 1


IDS = AcpiHeaderIds()


def checksum_ok(table: bytes | bytearray | memoryview) -> bool:
    return sum(table) & 0xFF == 0


def finish_table(signature: bytes, revision: int, body: bytes, ids: AcpiHeaderIds = IDS) -> bytes:
    """Header + body with the length filled in and the checksum byte set so the whole table sums to zero."""
    length = HEADER_SIZE + len(body)
    raw = bytearray(HEADER.pack(signature, length, revision, 0, ids.oem_id, ids.oem_table_id, ids.oem_revision,
                                ids.creator_id, ids.creator_revision) + body)
    raw[9] = (-sum(raw)) & 0xFF
    return bytes(raw)


def _uids(cpus: int) -> range:
    if not 1 <= cpus <= 255:
        raise ValueError(f"processor count {cpus} is outside 1..255")
    return range(cpus)


def build_madt(cpus: int, hw: PcHardware, ids: AcpiHeaderIds = IDS) -> bytes:
    """MADT (revision 5): IOAPIC 0 at GSI 0, ISA overrides (the SCI level/high, the PIT's IRQ0 -> GSI2 on a PC),
    LINT1 NMI, one enabled local APIC per vCPU with APIC ID = vCPU index and processor UID = index + 1."""
    parts = [struct.pack("<II", hw.lapic_addr, 1)]                                # flags: PCAT_COMPAT (8259s)
    parts.append(struct.pack("<BBBBII", 1, 12, 0, 0, hw.ioapic_addr, 0))          # I/O APIC
    parts.append(struct.pack("<BBBBIH", 2, 10, 0, hw.sci_irq, hw.sci_irq, 0x000D))  # SCI: active high, level
    parts.append(struct.pack("<BBBBIH", 2, 10, 0, hw.pit_irq, hw.pit_gsi, 0))     # PIT IRQ0 -> its pin
    parts.append(struct.pack("<BBBHB", 4, 6, 0xFF, 0, 1))                         # NMI on LINT1, all processors
    for i in _uids(cpus):
        parts.append(struct.pack("<BBBBI", 0, 8, i + 1, i, 1))                    # local APIC, enabled
    return finish_table(b"APIC", 5, b"".join(parts), ids)


def build_srat(cpus: int, ram: list[tuple[int, int]], ids: AcpiHeaderIds = IDS) -> bytes:
    """SRAT (revision 3), one proximity domain: every vCPU's APIC and every RAM range in domain 0."""
    parts = [struct.pack("<IQ", 1, 0)]
    for i in _uids(cpus):
        parts.append(struct.pack("<BBBBIB3sI", 0, 16, 0, i, 1, 0, bytes(3), 0))   # processor local APIC affinity
    for gpa, size in sorted(ram):
        parts.append(struct.pack("<BBIHIIIIIIQ", 1, 40, 0, 0, gpa & 0xFFFFFFFF, gpa >> 32,
                                 size & 0xFFFFFFFF, size >> 32, 0, 1, 0))         # memory affinity, enabled
    return finish_table(b"SRAT", 3, b"".join(parts), ids)


def build_slit(nodes: int = 1, ids: AcpiHeaderIds = IDS) -> bytes:
    """SLIT (revision 1): 10 on the diagonal, 20 elsewhere."""
    if not 1 <= nodes <= 255:
        raise ValueError(f"node count {nodes} is outside 1..255")
    matrix = bytes(10 if i == j else 20 for i in range(nodes) for j in range(nodes))
    return finish_table(b"SLIT", 1, struct.pack("<Q", nodes) + matrix, ids)


PPTT_PHYSICAL_PACKAGE, PPTT_ID_VALID, PPTT_THREAD, PPTT_LEAF, PPTT_IDENTICAL = 1, 2, 4, 8, 16


def build_pptt(cpus: int, ids: AcpiHeaderIds = IDS) -> bytes:
    """PPTT (revision 2): one socket holding one single-threaded core per vCPU (processor UID = index + 1)."""
    node = struct.Struct("<BBHIIII")     # type 0, length 20, reserved, flags, parent, ACPI processor id, resources
    package_offset = HEADER_SIZE
    parts = [node.pack(0, 20, 0, PPTT_PHYSICAL_PACKAGE | PPTT_IDENTICAL, 0, 0, 0)]
    for i in _uids(cpus):
        parts.append(node.pack(0, 20, 0, PPTT_ID_VALID | PPTT_LEAF | PPTT_IDENTICAL, package_offset, i + 1, 0))
    return finish_table(b"PPTT", 2, b"".join(parts), ids)


# --- the tables that let Linux find the rest and power off: DSDT, FADT, XSDT, RSDP --------------------------
def _pkg_length(body: bytes) -> bytes:
    """AML PkgLength (1 or 2 bytes, counting itself) followed by body."""
    n = len(body) + 1
    if n < 0x40:
        return bytes([n]) + body
    n += 1
    if n >= 0x1000:
        raise ValueError("AML package longer than 4 KiB")
    return bytes([0x40 | (n & 0xF), n >> 4]) + body


def _fw_cfg_device(hw: PcHardware) -> bytes:
    """Device(\\_SB.FWCF) {_HID "QEMU0002", _STA 0x0B, _CRS IO(Decode16, port, port, 1, count)}: what QEMU's DSDT
    says, so Linux's qemu_fw_cfg driver binds to the ports."""
    lo, hi = hw.fw_cfg_port & 0xFF, hw.fw_cfg_port >> 8
    io = bytes([0x47, 0x01, lo, hi, lo, hi, 0x01, hw.fw_cfg_ports, 0x79, 0x00])
    crs = b"\x08_CRS\x11" + _pkg_length(bytes([0x0A, len(io)]) + io)
    body = b"\x5c\x2e_SB_FWCF" + b"\x08_HID\x0dQEMU0002\x00" + b"\x08_STA\x0a\x0b" + crs
    return b"\x5b\x82" + _pkg_length(body)


def build_dsdt(hw: PcHardware, ids: AcpiHeaderIds = IDS) -> bytes:
    """DSDT (revision 2): Name(\\_S5, Package() {S, S, 0, 0}) with the machine's S5 sleep type (QEMU's is 0), the
    value power-off writes, and the fw_cfg device every pyvmm machine has."""
    typ = hw.s5_slp_typ
    s5 = bytes([0x08]) + b"\\_S5_" + bytes([0x12, 0x08, 0x04, 0x0A, typ, 0x0A, typ, 0x00, 0x00])
    return finish_table(b"DSDT", 2, s5 + _fw_cfg_device(hw), ids)


def _gas(space: int, bits: int, access: int, address: int) -> bytes:
    return struct.pack("<BBBBQ", space, bits, 0, access, address)


def build_fadt(dsdt_gpa: int, hw: PcHardware, ids: AcpiHeaderIds = IDS, facs_gpa: int = 0) -> bytes:
    """FADT (revision 6, 276 bytes): PM1a event/control, PM timer and GPE0 from the PM base, the SCI IRQ, reset
    through the reset port, an i8042 present, no SMI command port (ACPI is always enabled)."""
    pm_base = hw.pm_base
    body = bytearray(276 - HEADER_SIZE)

    def put(offset: int, fmt: str, *values: int | bytes) -> None:
        struct.pack_into(fmt, body, offset - HEADER_SIZE, *values)
    put(36, "<I", facs_gpa)                 # FIRMWARE_CTRL (0: no FACS)
    put(40, "<I", dsdt_gpa if dsdt_gpa < 1 << 32 else 0)
    put(46, "<H", hw.sci_irq)
    put(56, "<I", pm_base)                  # PM1a_EVT_BLK
    put(64, "<I", pm_base + 4)              # PM1a_CNT_BLK
    put(76, "<I", pm_base + 8)              # PM_TMR_BLK
    put(80, "<I", pm_base + 12)             # GPE0_BLK
    put(88, "<BBBBBB", 4, 2, 0, 4, 4, 0)    # PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN, GPE0_LEN, GPE1_LEN
    put(96, "<HH", 101, 1001)               # C2/C3 latencies above the limits: no C2/C3
    put(109, "<H", 0x0003)                  # IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042
    flags = 1 | 1 << 2 | 1 << 4 | 1 << 5 | 1 << 10   # WBINVD, PROC_C1, PWR_BUTTON, SLP_BUTTON, RESET_REG_SUP
    put(112, "<I", flags)
    body[116 - HEADER_SIZE:128 - HEADER_SIZE] = _gas(1, 8, 1, hw.reset_port)
    put(128, "<B", hw.reset_value)
    put(131, "<B", 0)                       # FADT minor version
    put(140, "<Q", dsdt_gpa)                # X_DSDT
    body[148 - HEADER_SIZE:160 - HEADER_SIZE] = _gas(1, 32, 3, pm_base)
    body[172 - HEADER_SIZE:184 - HEADER_SIZE] = _gas(1, 16, 2, pm_base + 4)
    body[208 - HEADER_SIZE:220 - HEADER_SIZE] = _gas(1, 32, 3, pm_base + 8)
    body[220 - HEADER_SIZE:232 - HEADER_SIZE] = _gas(1, 32, 1, pm_base + 12)
    return finish_table(b"FACP", 6, bytes(body), ids)


def build_xsdt(table_gpas: list[int], ids: AcpiHeaderIds = IDS) -> bytes:
    return finish_table(b"XSDT", 1, b"".join(struct.pack("<Q", g) for g in table_gpas), ids)


def build_rsdt(table_gpas: list[int], ids: AcpiHeaderIds = IDS) -> bytes:
    """RSDT (revision 1), 32-bit entries: what QEMU's pc/q35 tables use."""
    return finish_table(b"RSDT", 1, b"".join(struct.pack("<I", g) for g in table_gpas), ids)


def build_facs() -> bytes:
    """FACS (64 bytes, no checksum): zero hardware signature, waking vectors, global lock and flags, as QEMU."""
    return struct.pack("<4sI", b"FACS", 64) + bytes(56)


def build_rsdp_v1(rsdt_gpa: int, ids: AcpiHeaderIds = IDS) -> bytes:
    """RSDP revision 0 (20 bytes) pointing at an RSDT, as QEMU's pc/q35 build it."""
    raw = bytearray(struct.pack("<8sB6sBI", b"RSD PTR ", 0, ids.oem_id, 0, rsdt_gpa))
    raw[8] = (-sum(raw)) & 0xFF
    return bytes(raw)


def build_rsdp(xsdt_gpa: int, ids: AcpiHeaderIds = IDS) -> bytes:
    """RSDP revision 2 (36 bytes): no RSDT; checksum over the first 20 bytes, extended checksum over all 36."""
    raw = bytearray(struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, ids.oem_id, 2, 0, 36, xsdt_gpa, 0, bytes(3)))
    raw[8] = (-sum(raw[:20])) & 0xFF
    raw[32] = (-sum(raw)) & 0xFF
    return bytes(raw)

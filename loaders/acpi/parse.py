"""Parse the ACPI tables pyvmm builds (and any table with the standard header) back into plain values.

Used by tests, by `pyvmm igvm plan` to print what a guest receives, and by nothing on the launch path.
"""

from __future__ import annotations

import struct
from ..record import field, record

from .tables import HEADER, HEADER_SIZE, checksum_ok


@record
class AcpiTable:
    signature: str
    length: int
    revision: int
    checksum_ok: bool
    oem_id: bytes
    entries: list[dict] = field(default_factory=list)
    fields: dict = field(default_factory=dict)


def _subtables(body: memoryview, start: int) -> list[tuple[int, int, memoryview]]:
    out = []
    pos = start
    while pos + 2 <= len(body):
        typ, length = body[pos], body[pos + 1]
        if length < 2 or pos + length > len(body):
            raise ValueError(f"sub-table at offset {pos + HEADER_SIZE:#x} has bad length {length}")
        out.append((typ, pos, body[pos:pos + length]))
        pos += length
    if pos != len(body):
        raise ValueError("trailing bytes after the last sub-table")
    return out


def parse_table(data: bytes | bytearray | memoryview) -> AcpiTable:
    """Header fields, checksum verdict and the decoded entries of MADT, SRAT, SLIT and PPTT; ValueError if malformed."""
    mv = memoryview(bytes(data))
    if len(mv) < HEADER_SIZE:
        raise ValueError(f"an ACPI table needs {HEADER_SIZE} header bytes, got {len(mv)}")
    sig, length, rev, _, oem, _, _, _, _ = HEADER.unpack_from(mv, 0)
    if not HEADER_SIZE <= length <= len(mv):
        raise ValueError(f"table length {length} does not fit the {len(mv)} bytes given")
    mv = mv[:length]
    t = AcpiTable(sig.decode("latin-1"), length, rev, checksum_ok(mv), oem)
    body = mv[HEADER_SIZE:]
    if sig == b"APIC":
        t.fields["local_apic_address"], t.fields["flags"] = struct.unpack_from("<II", body)
        for typ, _, e in _subtables(body, 8):
            if typ == 0:
                t.entries.append({"type": "local_apic", "uid": e[2], "apic_id": e[3],
                                  "flags": struct.unpack_from("<I", e, 4)[0]})
            elif typ == 1:
                t.entries.append({"type": "io_apic", "id": e[2], "address": struct.unpack_from("<I", e, 4)[0],
                                  "gsi_base": struct.unpack_from("<I", e, 8)[0]})
            elif typ == 2:
                gsi, flags = struct.unpack_from("<IH", e, 4)
                t.entries.append({"type": "override", "source": e[3], "gsi": gsi, "flags": flags})
            elif typ == 4:
                t.entries.append({"type": "lapic_nmi", "uid": e[2], "lint": e[5]})
            else:
                t.entries.append({"type": typ, "length": len(e)})
    elif sig == b"SRAT":
        for typ, _, e in _subtables(body, 12):
            if typ == 0:
                t.entries.append({"type": "apic", "apic_id": e[3], "domain": e[2],
                                  "flags": struct.unpack_from("<I", e, 4)[0]})
            elif typ == 1:
                dom, _, lo, hi, llo, lhi, _, flags = struct.unpack_from("<IHIIIIII", e, 2)
                t.entries.append({"type": "memory", "domain": dom, "base": lo | hi << 32, "length": llo | lhi << 32,
                                  "flags": flags})
            else:
                t.entries.append({"type": typ, "length": len(e)})
    elif sig == b"SLIT":
        (n,) = struct.unpack_from("<Q", body)
        if 8 + n * n != len(body):
            raise ValueError(f"SLIT declares {n} localities but holds {len(body) - 8} matrix bytes")
        t.fields["localities"] = n
        t.fields["matrix"] = [list(body[8 + i * n:8 + (i + 1) * n]) for i in range(n)]
    elif sig == b"PPTT":
        for typ, off, e in _subtables(body, 0):
            if typ == 0:
                flags, parent, uid, _ = struct.unpack_from("<IIII", e, 4)
                t.entries.append({"type": "processor", "offset": off + HEADER_SIZE, "flags": flags,
                                  "parent": parent, "uid": uid})
            else:
                t.entries.append({"type": typ, "length": len(e)})
    return t

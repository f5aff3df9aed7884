"""The text of `pyvmm igvm plan`: the plan itself plus what each host parameter decodes to, for humans and diffs."""

from __future__ import annotations

import struct

from loaders.acpi import parse_table
from loaders.igvm.parameters import keeps_file_value, parameter_value, parse_memory_map
from loaders.igvm.constants import MemoryMapEntryType
from loaders.igvm.structs import ENVIRONMENT_INFO, MMIO_RANGES, VP_COUNT


def _mmio_text(value: bytes) -> str:
    r = MMIO_RANGES.read(value)
    return f"{r.start0 << 12:#x}+{r.pages0 << 12:#x}, {r.start1 << 12:#x}+{r.pages1 << 12:#x}"


def _decode(usage: str, value: bytes) -> str:
    if usage == "VP_COUNT_PARAMETER":
        return f"{VP_COUNT.read(value).vp_count} VPs"
    if usage == "MEMORY_MAP":
        parts = [f"{g:#x}-{g + s:#x} {MemoryMapEntryType(t).name}" for g, s, t in parse_memory_map(value)]
        return "; ".join(parts)
    if usage == "COMMAND_LINE":
        return repr(value.rstrip(b"\0").decode(errors="replace"))
    if usage in ("MADT", "SRAT", "SLIT", "PPTT"):
        t = parse_table(value)
        kinds: dict[str, int] = {}
        for e in t.entries:
            kinds[str(e["type"])] = kinds.get(str(e["type"]), 0) + 1
        what = ", ".join(f"{n} {k}" for k, n in kinds.items())
        return f"{t.signature} rev {t.revision}, {t.length} bytes, checksum {'ok' if t.checksum_ok else 'BAD'}" + \
            (f": {what}" if what else "")
    if usage == "MMIO_RANGES":
        return _mmio_text(value)
    if usage == "ENVIRONMENT_INFO_PARAMETER":
        return f"memory_is_shared={ENVIRONMENT_INFO.read(value).memory_is_shared & 1}"
    return f"{len(value)} bytes"


def blob_lines(data: bytes) -> list[str]:
    """The UEFI config blob, one line per structure, decoded (volatile payloads named, not shown)."""
    from loaders.uefi.blob import ACPI_TYPES, GIC, BlobType, Flags, parse_config_blob
    blob = parse_config_blob(data)
    count, size = struct.unpack_from("<II", data, 8)
    out = [f"uefi config blob: {count} structures, {size:#x} bytes"]
    for typ, payload in blob.structures:
        name = BlobType(typ).name if typ in BlobType._value2member_map_ else f"type {typ:#x}"
        if typ == BlobType.MEMORY_MAP:
            what = "; ".join(f"{b:#x}-{b + n:#x} flags {f:#x}" for b, n, f in blob.memory_map())
        elif typ in (BlobType.ENTROPY, BlobType.BIOS_GUID):
            what = f"{len(payload)} random bytes"
        elif typ == BlobType.PROCESSOR_INFORMATION:
            what = "max {} count {} per socket {} threads {}".format(*blob.processor_information())
        elif typ == BlobType.FLAGS:
            v = blob.flags()
            bits = [f.name.lower() for f in Flags if v & f.value]
            what = f"{v:#x} ({', '.join(bits)}, console {(v >> 7) & 3})"
        elif typ == BlobType.MMIO_RANGES:    # the same two (page, count) pairs as IGVM_VHS_MMIO_RANGES
            what = _mmio_text(payload)
        elif typ == BlobType.BIOS_INFORMATION:
            what = "bios_size_pages {:#x} flags {:#x}".format(*struct.unpack("<II", payload))
        elif typ == BlobType.GIC:
            what = "distributor {:#x} redistributors {:#x}".format(*GIC.unpack(payload))
        elif typ in ACPI_TYPES:
            what = _decode(payload[:4].decode("latin-1").replace("APIC", "MADT"), payload)
        else:
            what = f"{len(payload)} bytes"
        out.append(f"  {name}: {what}")
    return out


def plan_lines(prepared, label: str | None = None) -> list[str]:
    """Header, the plan's lines, then one line per parameter usage with its decoded value.

    The header names `label` (default: the file's path); it is the one line a comparison ignores (a "# " line).
    """
    host, plan = prepared.host, prepared.plan
    ram = ", ".join(f"{g:#x}-{g + s:#x}" for g, s in host.ram)
    out = [f"# pyvmm load plan for {prepared.path if label is None else label}",
           f"platform {prepared.platform.platform_type.name} (mask {prepared.platform.compatibility_mask:#x}), "
           f"{len(prepared.file.directives)} directives",
           f"machine: {host.cpus} vCPU(s), RAM {ram}"]
    out += plan.describe()
    for w in plan.writes:
        if w.what.startswith("UEFI config blob"):
            out += blob_lines(bytes(w.data))
    for p in plan.parameters:
        for usage, offset in p.usages:
            if keeps_file_value(usage, p, host):
                value = bytes(p.data[offset:]).split(b"\0")[0]
                out.append(f"parameter {p.index} {usage}@{offset:#x}: {_decode(usage, value)} (the file's own)")
                continue
            out.append(f"parameter {p.index} {usage}@{offset:#x}: {_decode(usage, parameter_value(usage, host))}")
    return out

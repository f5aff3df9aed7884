"""The text of `pyvmm igvm plan`: the plan itself plus what each host parameter decodes to, for humans and diffs."""

from __future__ import annotations

import struct

from loaders.acpi import parse_table
from loaders.igvm.parameters import parameter_value, parse_memory_map
from loaders.igvm.constants import MemoryMapEntryType


def _decode(usage: str, value: bytes) -> str:
    if usage == "VP_COUNT_PARAMETER":
        return f"{struct.unpack('<I', value)[0]} VPs"
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
        a, b, c, d = struct.unpack("<4Q", value)
        return f"{a << 12:#x}+{b << 12:#x}, {c << 12:#x}+{d << 12:#x}"
    if usage == "ENVIRONMENT_INFO_PARAMETER":
        return f"memory_is_shared={struct.unpack('<I', value)[0] & 1}"
    return f"{len(value)} bytes"


def plan_lines(prepared) -> list[str]:
    """Header, the plan's lines, then one line per parameter usage with its decoded value."""
    host, plan = prepared.host, prepared.plan
    ram = ", ".join(f"{g:#x}-{g + s:#x}" for g, s in host.ram)
    out = [f"# pyvmm load plan for {prepared.path}",
           f"platform {prepared.platform.platform_type.name} (mask {prepared.platform.compatibility_mask:#x}), "
           f"{len(prepared.file.directives)} directives",
           f"machine: {host.cpus} vCPU(s), RAM {ram}"]
    out += plan.describe()
    for p in plan.parameters:
        for usage, offset in p.usages:
            if usage == "COMMAND_LINE" and host.cmdline is None and p.initial is not None:
                value = bytes(p.data[offset:]).split(b"\0")[0]
                out.append(f"parameter {p.index} {usage}@{offset:#x}: {_decode(usage, value)} (the file's own)")
                continue
            out.append(f"parameter {p.index} {usage}@{offset:#x}: {_decode(usage, parameter_value(usage, host))}")
    return out

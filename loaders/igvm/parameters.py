"""Fill IGVM parameter areas from a plain description of the host machine (the IGVM
specification's IGVM_VHT_*_PARAMETER headers, igvm_defs/src/lib.rs).

The VMM builds a HostInfo from its configuration; everything here is pure, so `pyvmm igvm plan` shows
exactly the bytes a guest would receive without creating a VM.

A file says how big each area is; that number is a claim, not a budget. An area's filled contents are only
the bytes something writes (its initial data and each usage's value, page-rounded); the rest of the area is
zero and stays a number (ParameterRequest.size), so memory never grows with what a file merely claims.
"""

from __future__ import annotations

from ..record import field, record

from ..errors import LoadError
from ..plan import LoadPlan, ParameterRequest
from .constants import MemoryMapEntryType, PAGE_SIZE
from .structs import ENVIRONMENT_INFO, MEMORY_MAP_ENTRY, MEMORY_RANGE, VP_COUNT


@record
class HostInfo:
    """What the machine offers a guest: its vCPUs, RAM, command line and ACPI tables (bytes, built by loaders.acpi)."""
    cpus: int
    ram: list[tuple[int, int]]                               # (gpa, size), page-granular, holes excluded
    cmdline: str | None = None                               # None: keep the area's own initial text, if any
    madt: bytes = b""
    srat: bytes = b""
    slit: bytes = b""
    pptt: bytes = b""
    mmio: list[tuple[int, int]] = field(default_factory=list)   # (gpa, size): ranges free for device MMIO
    memory_is_shared: bool = False                           # never for a non-isolated VM


def memory_map_entries(ram: list[tuple[int, int]]) -> bytes:
    """IGVM memory map: one MEMORY entry per RAM range, sorted by GPA, no terminator (the caller's zeros end it)."""
    out = []
    for gpa, size in sorted(ram):
        if gpa % PAGE_SIZE or size % PAGE_SIZE or size <= 0:
            raise LoadError(f"RAM range {gpa:#x}+{size:#x} is not page-granular")
        out.append(MEMORY_MAP_ENTRY.pack_fields(starting_gpa_page_number=gpa // PAGE_SIZE,
                                                number_of_pages=size // PAGE_SIZE,
                                                entry_type=MemoryMapEntryType.MEMORY, flags=0, reserved=0))
    return b"".join(out)


def parse_memory_map(data: bytes | bytearray | memoryview) -> list[tuple[int, int, int]]:
    """(gpa, size, type) entries up to the first zero-page entry or the end of the area."""
    out = []
    for off in range(0, len(data) - MEMORY_MAP_ENTRY.size + 1, MEMORY_MAP_ENTRY.size):
        e = MEMORY_MAP_ENTRY.read(data, off)
        if e.number_of_pages == 0:
            break
        out.append((e.starting_gpa_page_number * PAGE_SIZE, e.number_of_pages * PAGE_SIZE, e.entry_type))
    return out


def parameter_value(usage: str, host: HostInfo) -> bytes:
    """The bytes one parameter usage writes, per igvm_defs' parameter header definitions."""
    if usage == "VP_COUNT_PARAMETER":
        return VP_COUNT.pack_fields(vp_count=host.cpus)
    if usage == "MEMORY_MAP":
        return memory_map_entries(host.ram)
    if usage == "COMMAND_LINE":
        raw = (host.cmdline or "").encode()
        if b"\0" in raw:
            raise LoadError(f"the command line contains a NUL byte at position {raw.index(0)}")
        return raw + b"\0"
    if usage in ("MADT", "SRAT", "SLIT", "PPTT"):
        table = getattr(host, usage.lower())
        if not table:
            raise LoadError(f"the machine has no {usage} table to give")
        return table
    if usage == "MMIO_RANGES":
        ranges = (host.mmio + [(0, 0), (0, 0)])[:2]
        return b"".join(MEMORY_RANGE.pack_fields(starting_gpa_page_number=g // PAGE_SIZE,
                                                 number_of_pages=s // PAGE_SIZE) for g, s in ranges)
    if usage == "ENVIRONMENT_INFO_PARAMETER":
        return ENVIRONMENT_INFO.pack_fields(memory_is_shared=1 if host.memory_is_shared else 0)
    raise LoadError(f"parameter usage {usage} is not supported")


def keeps_file_value(usage: str, req: ParameterRequest, host: HostInfo) -> bool:
    """True where the area's initial contents stand: the file's default command line when none was given."""
    return usage == "COMMAND_LINE" and host.cmdline is None and req.initial is not None


def fill_area(req: ParameterRequest, host: HostInfo) -> bytearray:
    """The written part of one area: its initial bytes with each usage's value at its offset, page-rounded.

    The area's remaining bytes up to req.size are zero and are not allocated; every value is checked to fit
    the area before anything is allocated.
    """
    values = []
    extent = len(req.initial) if req.initial is not None else 0
    for usage, offset in req.usages:
        if keeps_file_value(usage, req, host):
            continue      # the file's default command line stays unless --cmdline replaces it
        value = parameter_value(usage, host)
        if offset + len(value) > req.size:
            raise LoadError(f"{usage} needs {len(value):#x} bytes at offset {offset:#x}, but parameter area "
                            f"{req.index} holds only {req.size:#x} bytes")
        values.append((offset, value))
        extent = max(extent, offset + len(value))
    buf = bytearray(min(req.size, -(-extent // PAGE_SIZE) * PAGE_SIZE))
    if req.initial is not None:
        buf[:len(req.initial)] = req.initial
    for offset, value in values:
        buf[offset:offset + len(value)] = value
    return buf


def fill_parameters(plan: LoadPlan, host: HostInfo) -> None:
    """Fill every parameter area of the plan in place (ParameterRequest.data: the written prefix of the area)."""
    for req in plan.parameters:
        req.data = fill_area(req, host)

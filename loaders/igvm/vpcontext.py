"""VP contexts: the native x64 context (232 bytes) and the VBS register list, parsed and built.

Both turn into a loaders.plan.VpState so the launcher applies them the same way.
"""

from __future__ import annotations

import struct
from ..record import record

from ..errors import IgvmError
from ..plan import Segment, VpState
from .constants import NATIVE_CONTEXT_SIZE, PAGE_SIZE, VBS_REGISTER_SIZE
from .structs import NATIVE_VP_CONTEXT_X64, VBS_CONTEXT_HEADER, VBS_REGISTER

NATIVE_FIELDS = NATIVE_VP_CONTEXT_X64.fields
_GPRS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
         "r15", "rip", "rflags")


def parse_native_context(data) -> dict[str, int]:
    """Field name -> value of an IgvmNativeVpContextX64 (the first 232 bytes of the context page)."""
    if len(data) < NATIVE_CONTEXT_SIZE:
        raise IgvmError(f"native VP context is {len(data)} bytes, needs {NATIVE_CONTEXT_SIZE}")
    return dict(zip(NATIVE_FIELDS, NATIVE_VP_CONTEXT_X64.unpack_from(data, 0)))


def build_native_context(**values: int) -> bytes:
    """A 4 KiB context page from named fields (unnamed ones are zero)."""
    unknown = set(values) - set(NATIVE_FIELDS)
    if unknown:
        raise ValueError(f"unknown native context fields: {sorted(unknown)}")
    raw = NATIVE_VP_CONTEXT_X64.pack(*(values.get(n, 0) for n in NATIVE_FIELDS))
    return raw + bytes(PAGE_SIZE - len(raw))


def native_context_to_state(ctx: dict[str, int]) -> VpState:
    """The native context as plan registers: one code segment (CS), one data segment for DS/ES/FS/GS/SS."""
    regs = {n: ctx[n] for n in _GPRS}
    cs = Segment(ctx["code_selector"], ctx["code_base"], ctx["code_limit"], ctx["code_attributes"])
    ds = Segment(ctx["data_selector"], ctx["data_base"], ctx["data_limit"], ctx["data_attributes"])
    gs = Segment(ds.selector, ctx["gs_base"], ds.limit, ds.attributes)
    return VpState(regs=regs, segments={"cs": cs, "ds": ds, "es": ds, "fs": ds, "ss": ds, "gs": gs},
                   gdtr=(ctx["gdtr_base"], ctx["gdtr_limit"]), idtr=(ctx["idtr_base"], ctx["idtr_limit"]),
                   cr0=ctx["cr0"], cr3=ctx["cr3"], cr4=ctx["cr4"], efer=ctx["efer"])


# Hyper-V register names the VBS context may use on x64 (the igvm crate's accepted set).
VBS_X64_REGISTERS: dict[int, str] = {
    0x00020000: "rax", 0x00020001: "rcx", 0x00020002: "rdx", 0x00020003: "rbx", 0x00020004: "rsp",
    0x00020005: "rbp", 0x00020006: "rsi", 0x00020007: "rdi", 0x00020008: "r8", 0x00020009: "r9",
    0x0002000A: "r10", 0x0002000B: "r11", 0x0002000C: "r12", 0x00020010: "rip", 0x00020011: "rflags",
    0x00040000: "cr0", 0x00040002: "cr3", 0x00040003: "cr4",
    0x00060000: "es", 0x00060001: "cs", 0x00060002: "ss", 0x00060003: "ds", 0x00060004: "fs", 0x00060005: "gs",
    0x00060006: "ldt", 0x00060007: "tr", 0x00070000: "idtr", 0x00070001: "gdtr",
    0x00080001: "efer", 0x00080004: "pat", 0x0008000E: "mtrr_def_type",
}
VBS_X64_REGISTERS.update({0x00080010 + n: f"mtrr_phys_base{n}" for n in range(16)})
VBS_X64_REGISTERS.update({0x00080040 + n: f"mtrr_phys_mask{n}" for n in range(16)})
VBS_X64_REGISTERS.update({0x00080070 + n: f"mtrr_fix{n}" for n in range(11)})
VBS_NAME_TO_ID = {v: k for k, v in VBS_X64_REGISTERS.items()}

MSR_PAT, MSR_MTRR_DEF_TYPE = 0x277, 0x2FF
_MTRR_FIXED_MSRS = (0x250, 0x258, 0x259, 0x268, 0x269, 0x26A, 0x26B, 0x26C, 0x26D, 0x26E, 0x26F)


@record(frozen=True)
class VbsRegister:
    vtl: int
    name: str
    value: bytes   # 16 bytes, HV_REGISTER_VALUE


def parse_vbs_context(data) -> list[VbsRegister]:
    """The register list of a VBS VP context; IgvmError for counts, unknown names or non-zero mbz bytes."""
    if len(data) < 4:
        raise IgvmError("VBS VP context is shorter than its 4-byte register count")
    (count,) = VBS_CONTEXT_HEADER.unpack_from(data, 0)
    if count == 0:
        raise IgvmError("VBS VP context has no registers")
    if 4 + count * VBS_REGISTER_SIZE > len(data):
        raise IgvmError(f"VBS VP context declares {count} registers but holds {(len(data) - 4) // 32}")
    out = []
    for i in range(count):
        vtl, name, mbz, value = VBS_REGISTER.unpack_from(data, 4 + i * VBS_REGISTER_SIZE)
        if name not in VBS_X64_REGISTERS:
            raise IgvmError(f"VBS VP context register #{i}: unsupported x64 register name {name:#x}")
        if any(mbz):
            raise IgvmError(f"VBS VP context register #{i} ({VBS_X64_REGISTERS[name]}): reserved bytes are not zero")
        out.append(VbsRegister(vtl, VBS_X64_REGISTERS[name], bytes(value)))
    return out


def build_vbs_context(registers: list[VbsRegister]) -> bytes:
    raw = [VBS_CONTEXT_HEADER.pack(len(registers))]
    for r in registers:
        raw.append(VBS_REGISTER.pack(r.vtl, VBS_NAME_TO_ID[r.name], bytes(11), r.value.ljust(16, b"\0")))
    return b"".join(raw)


def vbs_segment(selector: int, base: int, limit: int, attributes: int) -> bytes:
    return struct.pack("<QIHH", base, limit, selector, attributes)


def vbs_table(base: int, limit: int) -> bytes:
    return struct.pack("<6xHQ", limit, base)


def vbs_to_state(registers: list[VbsRegister]) -> VpState:
    """VBS registers as plan state; PAT and MTRRs become MSRs. TR from the list is kept (KVM needs a TR)."""
    vp = VpState()
    for r in registers:
        v = r.value
        n = r.name
        if n in ("es", "cs", "ss", "ds", "fs", "gs", "ldt", "tr"):
            base, limit, sel, attr = struct.unpack_from("<QIHH", v)
            vp.segments[n] = Segment(sel, base, limit, attr)
        elif n in ("idtr", "gdtr"):
            limit, base = struct.unpack_from("<6xHQ", v)
            setattr(vp, n, (base, limit))
        elif n in ("cr0", "cr3", "cr4", "efer"):
            setattr(vp, n, int.from_bytes(v[:8], "little"))
        elif n == "pat":
            vp.msrs[MSR_PAT] = int.from_bytes(v[:8], "little")
        elif n == "mtrr_def_type":
            vp.msrs[MSR_MTRR_DEF_TYPE] = int.from_bytes(v[:8], "little")
        elif n.startswith("mtrr_phys_base"):
            vp.msrs[0x200 + 2 * int(n[14:])] = int.from_bytes(v[:8], "little")
        elif n.startswith("mtrr_phys_mask"):
            vp.msrs[0x201 + 2 * int(n[14:])] = int.from_bytes(v[:8], "little")
        elif n.startswith("mtrr_fix"):
            vp.msrs[_MTRR_FIXED_MSRS[int(n[8:])]] = int.from_bytes(v[:8], "little")
        else:
            vp.regs[n] = int.from_bytes(v[:8], "little")
    return vp

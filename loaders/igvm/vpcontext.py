"""VP contexts: the native x64 context (232 bytes) and the VBS register list, parsed and built.

Both turn into a loaders.plan.VpState so the launcher applies them the same way.
"""

from __future__ import annotations

from ..record import record

from ..errors import IgvmError
from ..plan import GPR_NAMES, SEGMENT_REGISTERS, Segment, VpState
from ..x86 import MSR_MTRR_DEF_TYPE, MSR_PAT
from .constants import PAGE_SIZE
from .structs import HV_SEGMENT, HV_TABLE, NATIVE_VP_CONTEXT_X64, VBS_CONTEXT_HEADER, VBS_REGISTER

NATIVE_FIELDS = NATIVE_VP_CONTEXT_X64.fields


def parse_native_context(data) -> dict[str, int]:
    """Field name -> value of an IgvmNativeVpContextX64 (the first 232 bytes of the context page)."""
    if len(data) < NATIVE_VP_CONTEXT_X64.size:
        raise IgvmError(f"native VP context is {len(data)} bytes, needs {NATIVE_VP_CONTEXT_X64.size}")
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
    regs = {n: ctx[n] for n in GPR_NAMES}
    cs = Segment(ctx["code_selector"], ctx["code_base"], ctx["code_limit"], ctx["code_attributes"])
    ds = Segment(ctx["data_selector"], ctx["data_base"], ctx["data_limit"], ctx["data_attributes"])
    gs = Segment(ds.selector, ctx["gs_base"], ds.limit, ds.attributes)
    return VpState(regs=regs, segments={"cs": cs, "ds": ds, "es": ds, "fs": ds, "ss": ds, "gs": gs},
                   gdtr=(ctx["gdtr_base"], ctx["gdtr_limit"]), idtr=(ctx["idtr_base"], ctx["idtr_limit"]),
                   cr0=ctx["cr0"], cr3=ctx["cr3"], cr4=ctx["cr4"], efer=ctx["efer"])


# The Hyper-V register names a VBS context may use on x64: exactly the igvm crate's X86Register set
# (igvm/src/registers.rs, TryFrom<VbsVpContextRegister>; values from hv_defs.rs HvX64RegisterName). The crate
# refuses any other name (rax, rcx, rdx, rbx, rdi, r13-r15, LDTR, CR2, MTRR pairs 5-15, the 16K/A0000 and
# 4K/C0000-D8000 fixed MTRRs...), so a file using one loads nowhere else; this reader refuses it too.
VBS_X64_REGISTERS: dict[int, str] = {
    0x00020004: "rsp", 0x00020005: "rbp", 0x00020006: "rsi", 0x00020008: "r8", 0x00020009: "r9",
    0x0002000A: "r10", 0x0002000B: "r11", 0x0002000C: "r12", 0x00020010: "rip", 0x00020011: "rflags",
    0x00040000: "cr0", 0x00040002: "cr3", 0x00040003: "cr4",
    0x00060000: "es", 0x00060001: "cs", 0x00060002: "ss", 0x00060003: "ds", 0x00060004: "fs", 0x00060005: "gs",
    0x00060007: "tr", 0x00070000: "idtr", 0x00070001: "gdtr",
    0x00080001: "efer", 0x00080004: "pat", 0x0008000E: "mtrr_def_type",
}
VBS_X64_REGISTERS.update({0x00080010 + n: f"mtrr_phys_base{n}" for n in range(5)})
VBS_X64_REGISTERS.update({0x00080040 + n: f"mtrr_phys_mask{n}" for n in range(5)})
# Fixed-range MTRRs by their index among the 11 (HvX64RegisterName MsrMtrrFix* = 0x80070 + index): the crate
# takes 64K_00000, 16K_80000 and 4K_E0000..4K_F8000.
VBS_X64_REGISTERS.update({0x00080070 + n: f"mtrr_fix{n}" for n in (0, 1, 7, 8, 9, 10)})
VBS_NAME_TO_ID = {v: k for k, v in VBS_X64_REGISTERS.items()}

_MTRR_FIXED_MSRS = (0x250, 0x258, 0x259, 0x268, 0x269, 0x26A, 0x26B, 0x26C, 0x26D, 0x26E, 0x26F)


@record(frozen=True)
class VbsRegister:
    vtl: int
    name: str
    value: bytes   # 16 bytes, HV_REGISTER_VALUE


def parse_vbs_context(data) -> list[VbsRegister]:
    """The register list of a VBS VP context; IgvmError for counts, unknown names or non-zero mbz bytes."""
    if len(data) < VBS_CONTEXT_HEADER.size:
        raise IgvmError(f"VBS VP context is shorter than its {VBS_CONTEXT_HEADER.size}-byte register count")
    count = VBS_CONTEXT_HEADER.read(data).register_count
    if count == 0:
        raise IgvmError("VBS VP context has no registers")
    if VBS_CONTEXT_HEADER.size + count * VBS_REGISTER.size > len(data):
        raise IgvmError(f"VBS VP context declares {count} registers but holds {(len(data) - 4) // 32}")
    out = []
    for i in range(count):
        r = VBS_REGISTER.read(data, VBS_CONTEXT_HEADER.size + i * VBS_REGISTER.size)
        name = VBS_X64_REGISTERS.get(r.register_name)
        if name is None:
            raise IgvmError(f"VBS VP context register #{i}: register name {r.register_name:#x} is not one the igvm "
                            "crate accepts for x64 (its X86Register set)")
        if any(r.mbz):
            raise IgvmError(f"VBS VP context register #{i} ({name}): reserved bytes are not zero")
        out.append(VbsRegister(r.vtl, name, bytes(r.register_value)))
    return out


def build_vbs_context(registers: list[VbsRegister]) -> bytes:
    """The register list bytes; ValueError for a register the igvm crate's set does not have."""
    unknown = [r.name for r in registers if r.name not in VBS_NAME_TO_ID]
    if unknown:
        raise ValueError(f"VBS VP context cannot hold {', '.join(unknown)}: the igvm crate accepts only "
                         f"{', '.join(VBS_NAME_TO_ID)}")
    raw = [VBS_CONTEXT_HEADER.pack_fields(register_count=len(registers))]
    for r in registers:
        raw.append(VBS_REGISTER.pack_fields(vtl=r.vtl, register_name=VBS_NAME_TO_ID[r.name], mbz=bytes(11),
                                            register_value=r.value.ljust(16, b"\0")))
    return b"".join(raw)


def vbs_segment(selector: int, base: int, limit: int, attributes: int) -> bytes:
    return HV_SEGMENT.pack_fields(base=base, limit=limit, selector=selector, attributes=attributes)


def vbs_table(base: int, limit: int) -> bytes:
    return HV_TABLE.pack_fields(pad=bytes(6), limit=limit, base=base)


def vbs_to_state(registers: list[VbsRegister]) -> VpState:
    """VBS registers as plan state; PAT and MTRRs become MSRs. TR from the list is kept (KVM needs a TR)."""
    vp = VpState()
    for r in registers:
        v = r.value
        n = r.name
        if n in SEGMENT_REGISTERS:
            seg = HV_SEGMENT.read(v)
            vp.segments[n] = Segment(seg.selector, seg.base, seg.limit, seg.attributes)
        elif n in ("idtr", "gdtr"):
            table = HV_TABLE.read(v)
            setattr(vp, n, (table.base, table.limit))
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

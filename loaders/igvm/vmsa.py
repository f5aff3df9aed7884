"""The SEV-ES/SEV-SNP VMSA page (the save area an SNP VP_CONTEXT holds), read into plan registers and built.

Offsets are those of the SEV-ES save area in AMD's APM vol. 2 ("VMSA layout, state save area for SEV-ES") as
the igvm crate declares it (`igvm/src/snp_defs.rs`, `SevVmsa`) and Linux does (`struct sev_es_save_area`).
Segment attributes there are the SVM compressed form: bits 7:0 are descriptor bits 47:40 (type, S, DPL, P) and
bits 11:8 descriptor bits 55:52 (AVL, L, D/B, G); the plan's form has those four at bits 15:12.

For a plain KVM guest (no SEV hardware) some VMSA values cannot be used as they are; `vmsa_to_state` changes
them and says so in `notes`: EFER.SVME is cleared (KVM refuses it without SVM in the guest's CPUID), the SNP
C-bit (bit 51, where SNP parts put it) is cleared from CR3, and a TR that is not present becomes an empty busy
32-bit TSS (VMX refuses to enter with an unusable TR). SEV_FEATURES, VMPL, VIRTUAL_TOM and the event-injection
fields mean nothing without SNP and are ignored; DR6/DR7 and the x87/SSE state keep KVM's reset values.
"""

from __future__ import annotations

import struct

from ..errors import IgvmError
from ..plan import RESET_TR, Segment, VpState
from .constants import PAGE_SIZE

SEGMENTS = {"es": 0x00, "cs": 0x10, "ss": 0x20, "ds": 0x30, "fs": 0x40, "gs": 0x50, "ldt": 0x70, "tr": 0x90}
GDTR, IDTR = 0x60, 0x80
_SEG = struct.Struct("<HHIQ")         # selector, attrib, limit, base
# u64 fields by offset
U64 = {"efer": 0xD0, "xss": 0x140, "cr4": 0x148, "cr3": 0x150, "cr0": 0x158, "dr7": 0x160, "dr6": 0x168,
       "rflags": 0x170, "rip": 0x178, "rsp": 0x1D8, "rax": 0x1F8, "star": 0x200, "lstar": 0x208, "cstar": 0x210,
       "sfmask": 0x218, "kernel_gs_base": 0x220, "sysenter_cs": 0x228, "sysenter_esp": 0x230,
       "sysenter_eip": 0x238, "cr2": 0x240, "g_pat": 0x268, "rcx": 0x308, "rdx": 0x310, "rbx": 0x318,
       "rbp": 0x328, "rsi": 0x330, "rdi": 0x338, "r8": 0x340, "r9": 0x348, "r10": 0x350, "r11": 0x358,
       "r12": 0x360, "r13": 0x368, "r14": 0x370, "r15": 0x378, "sev_features": 0x3B0, "virtual_tom": 0x3C8,
       "xcr0": 0x3E8}
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
        "r15", "rip", "rflags")
MSRS = {"star": 0xC0000081, "lstar": 0xC0000082, "cstar": 0xC0000083, "sfmask": 0xC0000084,
        "kernel_gs_base": 0xC0000102, "sysenter_cs": 0x174, "sysenter_esp": 0x175, "sysenter_eip": 0x176,
        "g_pat": 0x277}
EFER_SVME = 1 << 12
SNP_C_BIT = 51


def vmsa_attr_to_plan(attrib: int) -> int:
    return (attrib & 0xFF) | ((attrib & 0xF00) << 4)


def plan_attr_to_vmsa(attributes: int) -> int:
    return (attributes & 0xFF) | ((attributes >> 4) & 0xF00)


def parse_vmsa(page) -> dict:
    """Field name -> value: u64 fields, segments as (selector, attrib, limit, base), gdtr/idtr as (base, limit)."""
    if len(page) < PAGE_SIZE:
        raise IgvmError(f"VMSA is {len(page)} bytes, needs {PAGE_SIZE}")
    out: dict = {n: int.from_bytes(page[o:o + 8], "little") for n, o in U64.items()}
    for n, o in SEGMENTS.items():
        out[n] = _SEG.unpack_from(page, o)
    for n, o in (("gdtr", GDTR), ("idtr", IDTR)):
        _, _, limit, base = _SEG.unpack_from(page, o)
        out[n] = (base, limit)
    return out


def build_vmsa(**values) -> bytes:
    """A 4 KiB VMSA from named fields (the names of parse_vmsa; segments as (selector, attrib, limit, base))."""
    page = bytearray(PAGE_SIZE)
    for n, v in values.items():
        if n in U64:
            struct.pack_into("<Q", page, U64[n], v)
        elif n in SEGMENTS:
            _SEG.pack_into(page, SEGMENTS[n], *v)
        elif n in ("gdtr", "idtr"):
            _SEG.pack_into(page, GDTR if n == "gdtr" else IDTR, 0, 0, v[1], v[0])
        else:
            raise ValueError(f"unknown VMSA field {n!r}")
    return bytes(page)


def vmsa_to_state(page, notes: list[str] | None = None) -> VpState:
    """The VMSA as plan registers for a non-SNP KVM vCPU (see the module docstring for what changes)."""
    v = parse_vmsa(page)
    notes = notes if notes is not None else []
    segs = {}
    for n in SEGMENTS:
        sel, attrib, limit, base = v[n]
        segs[n] = Segment(sel, base, limit, vmsa_attr_to_plan(attrib))
    if not segs["tr"].present:
        segs["tr"] = RESET_TR
        notes.append("the VMSA's TR is not present: pyvmm gives the vCPU an empty busy TSS (VMX needs one)")
    efer = v["efer"]
    if efer & EFER_SVME:
        efer &= ~EFER_SVME
        notes.append("EFER.SVME cleared (the guest has no SVM)")
    cr3 = v["cr3"]
    if cr3 >> SNP_C_BIT:
        cr3 &= (1 << SNP_C_BIT) - 1
        notes.append(f"C-bit (bit {SNP_C_BIT}) cleared from CR3")
    return VpState(regs={n: v[n] for n in GPRS}, segments=segs, gdtr=v["gdtr"], idtr=v["idtr"], cr0=v["cr0"],
                   cr2=v["cr2"], cr3=cr3, cr4=v["cr4"], efer=efer,
                   msrs={msr: v[n] for n, msr in MSRS.items() if v[n]}, xcr0=v["xcr0"] or 1)  # x87 always on

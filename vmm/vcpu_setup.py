"""Per-vCPU set-up the reference VMMs agree on: CPUID fixups, boot MSRs, LAPIC LINT pins, and plan registers."""

from __future__ import annotations

from kvm import Vcpu
from kvm.uapi import kvm_cpuid_entry2, kvm_segment
from loaders.plan import SEGMENT_REGISTERS, Segment, VpState
from loaders.x86 import MSR_MTRR_DEF_TYPE

MSR_IA32_TSC = 0x10
MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP = 0x174, 0x175, 0x176
MSR_IA32_MISC_ENABLE = 0x1A0
MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK = 0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084
MSR_KERNEL_GS_BASE = 0xC0000102

BOOT_MSRS = {
    MSR_IA32_SYSENTER_CS: 0, MSR_IA32_SYSENTER_ESP: 0, MSR_IA32_SYSENTER_EIP: 0,
    MSR_STAR: 0, MSR_LSTAR: 0, MSR_CSTAR: 0, MSR_SYSCALL_MASK: 0, MSR_KERNEL_GS_BASE: 0,
    MSR_IA32_TSC: 0,
    MSR_IA32_MISC_ENABLE: 1,                 # fast strings, as firmware leaves it
    MSR_MTRR_DEF_TYPE: (1 << 11) | 6,        # MTRRs enabled, default write-back (no firmware to do it)
}

APIC_LVT0, APIC_LVT1 = 0x350, 0x360
APIC_MODE_NMI, APIC_MODE_EXTINT = 0x4, 0x7


def cpuid_for_vcpu(supported: list[kvm_cpuid_entry2], index: int, count: int) -> list[kvm_cpuid_entry2]:
    """KVM's supported CPUID with the fixups every VMM applies (APIC ids, hypervisor bit, no PMU)."""
    out = []
    for src in supported:
        e = kvm_cpuid_entry2.from_buffer_copy(src)
        if e.function == 1:
            e.ebx = (e.ebx & 0x0000FFFF) | (index << 24) | (min(count, 255) << 16) | (8 << 8)
            e.ecx |= 1 << 31                       # running under a hypervisor
            e.ecx &= ~(1 << 15)                    # no PDCM: no perf capabilities MSR
            if count > 1:
                e.edx |= 1 << 28                   # HTT: more than one logical processor
        elif e.function == 6:
            e.ecx &= ~(1 << 3)                     # no energy-performance bias MSR
        elif e.function == 0xA:
            e.eax = e.ebx = e.ecx = e.edx = 0      # no architectural PMU
        elif e.function in (0xB, 0x1F):
            e.edx = index                          # x2APIC id
        out.append(e)
    return out


def setup_lapic(vcpu: Vcpu) -> None:
    """LINT0 as ExtINT and LINT1 as NMI: virtual-wire mode, so PIC interrupts reach the BSP before APIC setup."""
    regs = vcpu.get_lapic()
    for off, mode in ((APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)):
        v = int.from_bytes(regs[off:off + 4], "little")
        v = (v & ~0x700) | (mode << 8)
        regs[off:off + 4] = v.to_bytes(4, "little")
    vcpu.set_lapic(regs)


def _to_kvm_segment(seg: Segment, dst: kvm_segment) -> None:
    a = seg.attributes
    dst.selector = seg.selector
    dst.base = seg.base
    dst.limit = seg.limit
    dst.type = a & 0xF
    dst.s = (a >> 4) & 1
    dst.dpl = (a >> 5) & 3
    dst.present = (a >> 7) & 1
    dst.avl = (a >> 12) & 1
    dst.l = (a >> 13) & 1
    dst.db = (a >> 14) & 1
    dst.g = (a >> 15) & 1
    dst.unusable = 0 if dst.present else 1


def apply_vp_state(vcpu: Vcpu, vp: VpState) -> None:
    """Overlay a plan's registers on the vCPU's reset state; RFLAGS bit 1 is always set."""
    regs = vcpu.get_regs()
    for name, value in vp.regs.items():
        setattr(regs, name, value)
    regs.rflags |= 0x2
    sregs = vcpu.get_sregs()
    for name in SEGMENT_REGISTERS:
        seg = vp.segments.get(name)
        if seg is not None:
            _to_kvm_segment(seg, getattr(sregs, name))
    if vp.gdtr is not None:
        sregs.gdt.base, sregs.gdt.limit = vp.gdtr
    if vp.idtr is not None:
        sregs.idt.base, sregs.idt.limit = vp.idtr
    for name in ("cr0", "cr2", "cr3", "cr4", "efer"):
        v = getattr(vp, name)
        if v is not None:
            setattr(sregs, name, v)
    vcpu.set_sregs(sregs)
    vcpu.set_regs(regs)
    if vp.msrs:
        vcpu.set_msrs(dict(vp.msrs))
    if vp.xcr0 not in (None, 1):           # 1 (x87 only) is KVM's reset value
        vcpu.set_xcr(0, vp.xcr0)

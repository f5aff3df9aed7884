"""SEV-SNP and TDX IGVM files launched as ordinary (non-confidential) KVM guests, for debugging loaders.

No isolation hardware takes part: the file's pages for the platform become plain guest memory (unmeasured and
shared pages too); the SECRETS page reads as zeroes; the CPUID page is filled by the VMM from the CPUID it gives
vCPU 0 (loaders/igvm/snp_cpuid.py); each SNP VP_CONTEXT (a VMSA page) becomes KVM register state
(loaders/igvm/vmsa.py). vCPUs the file gives no VMSA wait for INIT/SIPI, as on any PC. The guest policy and the
SNP_ID_BLOCK are reported in the plan, not enforced.

TDX has no VP context: every TD vCPU starts from the state the TDX module sets (Intel TDX Module Base
Architecture Specification, "Initial TD vCPU state"; intel/tdx-module `td_vmcs_init.c`, `tdh_vp_init.c`): 32-bit
flat protected mode with paging off at RIP 0xFFFFFFF0, CR0 = PE|NE, EFER = SCE|LME|NXE, RBX = the guest-physical
address width, RSI = the vCPU index, RCX = R8 = 0 (KVM_TDX_INIT_VCPU's parameter). CR4.VMXE, which the module
also sets, is left clear (a plain guest has no VMX); CR4.MCE stays. RDX keeps KVM's reset value. All vCPUs start
running at once, as TD vCPUs do. The file must have a page at 0xFFFFF000; RAM is mapped below 4 GiB for its pages
in the top 16 MiB (LoadPlan.top_ram), where a PC has its firmware flash.

The work is done by re-expressing the platform's directives as a NATIVE file and planning that with the ordinary
planner (loaders/igvm/load.py), then putting in the converted registers.
"""

from __future__ import annotations

from ..errors import IgvmError, LoadError
from ..plan import LoadPlan, Segment, VpState
from ..record import replace
from ..x86 import CR0_PG, EFER_LMA, FOUR_GIB, PTE_PS, walk_page_tables
from . import model as m
from .constants import PAGE_SIZE, PageDataFlags, PageDataType, Platform
from .load import igvm_plan
from .vmsa import SNP_C_BIT, vmsa_to_state
from .vpcontext import build_native_context

CONFIDENTIAL = {"sev_snp": Platform.SEV_SNP, "tdx": Platform.TDX}
NO_CONFIDENTIALITY = {
    "SEV_SNP": "pyvmm: SEV_SNP guest runs WITHOUT confidentiality (plain memory; nothing encrypted, measured or "
               "attested); its CPUID 0x8000001F reads 0 (no SME/SEV), so Linux never reads MSR 0xC0010131",
    "TDX": "pyvmm: TDX guest runs WITHOUT confidentiality (plain memory; nothing encrypted, measured or attested); "
           "it has no TDX module: CPUID leaf 0x21 is not 'IntelTDX' and TDCALL raises #UD",
}
_KEEP_FLAGS = int(PageDataFlags.IS_2MB_PAGE)

# The TD vCPU's initial state (see the module docstring).
TDX_FLAT_CODE = Segment(0, 0, 0xFFFFFFFF, 0xC09B)
TDX_FLAT_DATA = Segment(0, 0, 0xFFFFFFFF, 0xC093)
TDX_GPAW = 48
TDX_RESET_PAGE = 0xFFFFF000
# A TDX image's pages from here to 4 GiB (the x86 firmware window: 16 MiB, above the local APIC) get RAM mapped
# there, in 2 MiB steps; pages elsewhere must lie in the machine's RAM.
TOP_WINDOW_START = FOUR_GIB - (16 << 20)
TOP_WINDOW_ALIGN = 2 << 20


def tdx_initial_state(vp_index: int) -> VpState:
    data = TDX_FLAT_DATA
    return VpState(regs={"rip": 0xFFFFFFF0, "rflags": 0x2, "rbx": TDX_GPAW, "rsi": vp_index, "rcx": 0, "r8": 0},
                   segments={"cs": TDX_FLAT_CODE, "ds": data, "es": data, "fs": data, "gs": data, "ss": data,
                             "tr": Segment(0, 0, 0xFFFF, 0x008B), "ldt": Segment(0, 0, 0xFFFF, 0x0082)},
                   gdtr=(0, 0xFFFF), idtr=(0, 0), cr0=0x21, cr3=0, cr4=0x40, efer=0x901,
                   msrs={0x277: 0x0007040600070406}, xcr0=1)


def _walk_page_tables(pages: dict[int, int], directives: list, cr3: int, strip: bool, notes: list[str]) -> None:
    """Walk the 4-level page tables under CR3 that the file itself supplies: with `strip`, clear the C-bit in every
    present entry (a plain guest's MAXPHYADDR makes it a reserved bit); note 1 GiB pages, which the machine splits
    into 2 MiB pages where KVM offers none (vmm/gib_split.py). Only pages whose bytes change are rewritten, so the
    others keep their place in the file (a plan copies runs of untouched pages as one slice)."""
    c_bit = 1 << SNP_C_BIT
    tables: dict[int, bytearray] = {}

    def read(gpa: int) -> bytearray | None:
        i = pages.get(gpa)
        if i is None or directives[i].data is None:
            return None
        return tables.setdefault(gpa, bytearray(directives[i].data[:PAGE_SIZE]))
    gib_pages = False
    for gpa, level, i, e in walk_page_tables(read, cr3, 4, next_mask=~c_bit):
        if strip and e & c_bit:
            tables[gpa][8 * i:8 * i + 8] = (e & ~c_bit).to_bytes(8, "little")
        if level == 3 and e & PTE_PS:
            gib_pages = True
    n = 0
    for gpa, table in tables.items():
        i = pages[gpa]
        if bytes(table) != bytes(directives[i].data[:PAGE_SIZE]):
            directives[i] = replace(directives[i], data=bytes(table), file_offset=0)
            n += 1
    if n:
        notes.append(f"C-bit cleared in {n} page-table page(s) under CR3")
    if gib_pages:
        notes.append("the page tables map 1 GiB pages (split into 2 MiB pages at launch where KVM offers none)")


def confidential_plan(f: m.IgvmFile, name: str, vcpus: int) -> tuple[LoadPlan, m.SupportedPlatform]:
    """The plan of `f`'s SEV_SNP or TDX directives (`name` 'sev_snp' or 'tdx') as a non-confidential guest."""
    pt = CONFIDENTIAL[name]
    p = f.platform(pt)
    if p is None:
        names = ", ".join(x.name for x in f.platform_types()) or "none"
        raise LoadError(f"the file declares no {pt.name} platform (it declares: {names})")
    bit = p.compatibility_mask
    notes: list[str] = []
    directives: list = []
    cpuid_pages: list = []
    vmsas: dict[int, object] = {}
    pages: dict[int, int] = {}           # 4 KiB page GPA -> index in directives, for the C-bit walk
    for d in f.directives:       # every header keeps its index, so the plan's "header #N" names the file's header
        mask = getattr(d, "compatibility_mask", None)
        if mask is not None and not mask & bit:
            pass                 # another platform's: the planner skips it
        elif m.is_a(d, "PageData"):
            flags = d.flags & _KEEP_FLAGS
            if d.data_type == PageDataType.SECRETS:
                d = replace(d, flags=flags, data_type=0, data=None, file_offset=0)
            elif d.data_type in (PageDataType.CPUID_DATA, PageDataType.CPUID_XF):
                cpuid_pages.append((d.gpa, d.data))
                d = replace(d, flags=flags, data_type=0, data=None, file_offset=0)
            elif d.flags != flags:
                d = replace(d, flags=flags)
            if not flags:
                pages[d.gpa] = len(directives)
        elif m.is_a(d, "VpContext"):
            if d.vp_index in vmsas:
                raise LoadError(f"a second {pt.name} VP context for VP {d.vp_index}")
            vmsas[d.vp_index] = d.data
            d = replace(d, compatibility_mask=0)       # a mask of no platform: the planner skips it
        directives.append(d)
    vps: dict[int, VpState] = {}
    top_ram = 0
    if pt == Platform.SEV_SNP:
        if 0 not in vmsas:
            raise LoadError("the file has no SEV_SNP VP context (VMSA) for VP 0, the boot processor")
        for i, page in sorted(vmsas.items()):
            try:
                vps[i] = vmsa_to_state(page, notes if i == 0 else [])
            except IgvmError as e:
                raise LoadError(f"VMSA of VP {i}: {e}") from None
        if vps[0].cr0 & CR0_PG and vps[0].efer & EFER_LMA:
            strip = vps[0].cr3 != int.from_bytes(bytes(vmsas[0][0x150:0x158]), "little")
            _walk_page_tables(pages, directives, vps[0].cr3, strip, notes)
        unused = sorted(i for i in vps if i >= vcpus)
        if unused:
            notes.append(f"VMSAs for VP {unused} unused: the machine has {vcpus} vCPU(s)")
        if vcpus > len([i for i in vps if i < vcpus]):
            notes.append("vCPUs without a VMSA in the file wait for INIT/SIPI")
    else:
        vps = {i: tdx_initial_state(i) for i in range(vcpus)}
        low = [d.gpa for d in directives if m.is_a(d, "PageData") and d.compatibility_mask & bit
               and TOP_WINDOW_START <= d.gpa < FOUR_GIB]
        if not any(d.gpa == TDX_RESET_PAGE for d in directives if m.is_a(d, "PageData") and d.compatibility_mask & bit):
            raise LoadError(f"the file has no TDX page at {TDX_RESET_PAGE:#x}: a TD vCPU starts at RIP 0xfffffff0")
        top_ram = FOUR_GIB - (min(low) & ~(TOP_WINDOW_ALIGN - 1))
    for h in f.initializations:
        if m.is_a(h, "GuestPolicy") and h.compatibility_mask & bit:
            notes.append(f"{pt.name} guest policy {h.policy:#x} (shown, not enforced)")
    directives.append(m.VpContext(0, bit, 0, build_native_context()))     # the planner wants VP 0; replaced below
    native = m.SupportedPlatform(bit, 0, Platform.NATIVE)
    platforms = tuple(native if x is p else x for x in f.platforms)
    plan = igvm_plan(m.IgvmFile(f.version, platforms, f.initializations, tuple(directives), f.architecture), native)
    plan.vps = vps
    plan.snp_cpuid_pages = cpuid_pages
    plan.hide_sev = pt == Platform.SEV_SNP
    plan.top_ram = top_ram
    plan.notes += notes
    return plan, p

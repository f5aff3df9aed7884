"""The igvm crate's rules (microsoft/igvm, igvm/src/lib.rs and registers.rs) that pyvmm's reader enforces too:
a negative file for each, refused in one line that names the header and the rule, and the nearest legal file
accepted (so a rule that refuses everything fails here as well)."""

import pytest

from loaders.errors import IgvmError
from loaders.igvm import (ErrorRange, IgvmFile, PageData, Platform, RelocatableRegion, SupportedPlatform, VpContext,
                          read_igvm, write_igvm)
from loaders.igvm.load import igvm_plan
from loaders.igvm.model import PageTableRelocation
from loaders.igvm.structs import VBS_CONTEXT_HEADER, VBS_REGISTER
from loaders.igvm.vpcontext import VbsRegister, build_native_context, build_vbs_context, parse_vbs_context

NATIVE = SupportedPlatform(1, 0, Platform.NATIVE)
PAGE = PageData(0x1000, 1, data=b"\xf4" * 4096)
NATIVE_CTX = VpContext(0, 1, 0, build_native_context(rip=0x1000, rflags=2))


def _refused(f: IgvmFile, header: str, words: str) -> str:
    with pytest.raises(IgvmError) as e:
        read_igvm(write_igvm(f))
    msg = str(e.value)
    assert "\n" not in msg and f"({header}) at file offset" in msg and words in msg, msg
    return msg


# --- SNP VP context: the VMSA is a page of its own (lib.rs validate(): SnpVpContext gpa % PAGE_SIZE_4K) ------
@pytest.mark.parametrize("platform", [Platform.SEV_SNP, Platform.SEV_ES])
def test_snp_vp_context_gpa_must_be_page_aligned(platform):
    plats = (NATIVE, SupportedPlatform(2, 0, platform))
    good = IgvmFile(2, plats, directives=(PAGE, NATIVE_CTX, VpContext(0xFFFFF000, 2, 0, b"\x55" * 4096)))
    assert read_igvm(write_igvm(good)).directives[2].gpa == 0xFFFFF000
    bad = IgvmFile(2, plats, directives=(PAGE, NATIVE_CTX, VpContext(0xFFFFF008, 2, 0, b"\x55" * 4096)))
    _refused(bad, "VP_CONTEXT", f"{platform.name} VMSA GPA 0xfffff008 is not 4 KiB-aligned")


# --- relocation regions of one platform may not overlap (lib.rs: check_region_overlap, RelocationRegionsOverlap) --
VSM = SupportedPlatform(1, 2, Platform.VSM_ISOLATION)


def _vsm_file(*inits) -> IgvmFile:
    regs = [VbsRegister(vtl, "rip", (0x1000).to_bytes(16, "little")) for vtl in (0,)]
    return IgvmFile(1, (VSM,), inits, (PAGE, VpContext(0, 1, 0, build_vbs_context(regs))))


def _region(gpa: int, size: int) -> RelocatableRegion:
    return RelocatableRegion(1, 0, 0, 0, 0x1000, gpa, size, 0, 0x100000000)


def test_relocatable_regions_of_one_platform_may_not_overlap():
    adjacent = _vsm_file(_region(0x100000, 0x10000), _region(0x110000, 0x10000))
    assert len(read_igvm(write_igvm(adjacent)).initializations) == 2
    msg = _refused(_vsm_file(_region(0x100000, 0x10000), _region(0x10F000, 0x10000)), "RELOCATABLE_REGION",
                   "relocatable region 0x10f000-0x11f000 overlaps the relocatable region at 0x100000-0x110000")
    assert msg.startswith("header #2 ")    # the later region is the one refused (#0 is the platform)


def test_a_page_table_region_may_not_overlap_a_relocatable_region():
    pt = PageTableRelocation(1, 0, 0, 0x108000, 0x4000, 0x1000)
    _refused(_vsm_file(_region(0x100000, 0x10000), pt), "PAGE_TABLE_RELOCATION_REGION",
             "page-table relocation region 0x108000-0x10c000 overlaps the relocatable region")


def test_a_region_may_not_wrap_the_address_space():
    _refused(_vsm_file(_region((1 << 64) - 0x1000, 0x2000)), "RELOCATABLE_REGION",
             "runs past the end of the 64-bit address space")


# --- ERROR_RANGE: page-aligned GPA (lib.rs) and a non-empty page-multiple size (igvm_defs IGVM_VHS_ERROR_RANGE) -
def _error_range(gpa: int, size: int) -> IgvmFile:
    return IgvmFile(2, (NATIVE,), directives=(PAGE, ErrorRange(gpa, 1, size), NATIVE_CTX))


@pytest.mark.parametrize("gpa,size,words", [
    (0x10800, 0x1000, "GPA 0x10800 is not 0x1000-aligned"),
    (0x10000, 0, "size 0x0 is not a non-zero multiple of 4 KiB"),
    (0x10000, 0x1800, "size 0x1800 is not a non-zero multiple of 4 KiB"),
])
def test_error_range_rules(gpa, size, words):
    _refused(_error_range(gpa, size), "ERROR_RANGE", words)


def test_error_range_at_gpa_0_is_allowed_and_planned():
    f = read_igvm(write_igvm(_error_range(0, 0x1000)))
    plan = igvm_plan(f, f.platforms[0])
    assert [(z.gpa, z.size) for z in plan.zeros] == [(0, 0x1000)]


# --- VBS register lists: exactly the igvm crate's X86Register set (registers.rs, hv_defs.rs ids) ----------------
# Written out here from registers.rs (TryFrom<VbsVpContextRegister> for X86Register) and hv_defs.rs, not taken
# from pyvmm's table, so the test fails if that table drifts from the crate.
CRATE_X86_REGISTERS = {
    0x00070001: "gdtr", 0x00070000: "idtr", 0x00060003: "ds", 0x00060000: "es", 0x00060004: "fs", 0x00060005: "gs",
    0x00060002: "ss", 0x00060001: "cs", 0x00060007: "tr", 0x00040000: "cr0", 0x00040002: "cr3", 0x00040003: "cr4",
    0x00080001: "efer", 0x00080004: "pat", 0x00020005: "rbp", 0x00020010: "rip", 0x00020006: "rsi",
    0x00020004: "rsp", 0x00020008: "r8", 0x00020009: "r9", 0x0002000A: "r10", 0x0002000B: "r11",
    0x0002000C: "r12", 0x00020011: "rflags", 0x0008000E: "mtrr_def_type",
    0x00080010: "mtrr_phys_base0", 0x00080040: "mtrr_phys_mask0", 0x00080011: "mtrr_phys_base1",
    0x00080041: "mtrr_phys_mask1", 0x00080012: "mtrr_phys_base2", 0x00080042: "mtrr_phys_mask2",
    0x00080013: "mtrr_phys_base3", 0x00080043: "mtrr_phys_mask3", 0x00080014: "mtrr_phys_base4",
    0x00080044: "mtrr_phys_mask4",
    0x00080070: "mtrr_fix0",    # MsrMtrrFix64k00000
    0x00080071: "mtrr_fix1",    # MsrMtrrFix16k80000
    0x00080077: "mtrr_fix7",    # MsrMtrrFix4kE0000
    0x00080078: "mtrr_fix8",    # MsrMtrrFix4kE8000
    0x00080079: "mtrr_fix9",    # MsrMtrrFix4kF0000
    0x0008007A: "mtrr_fix10",   # MsrMtrrFix4kF8000
}
# Hyper-V names the crate does not take (hv_defs.rs): each must be refused.
OUTSIDE_THE_CRATE = {"rax": 0x00020000, "rcx": 0x00020001, "rdx": 0x00020002, "rbx": 0x00020003,
                     "rdi": 0x00020007, "r13": 0x0002000D, "r15": 0x0002000F, "cr2": 0x00040001,
                     "ldtr": 0x00060006, "mtrr_phys_base5": 0x00080015, "mtrr_phys_mask15": 0x0008004F,
                     "MsrMtrrFix16kA0000": 0x00080072, "MsrMtrrFix4kD8000": 0x00080076, "xmm0": 0x00030000}


def _raw_list(*ids: int) -> bytes:
    """A VBS register list built from raw Hyper-V ids (VbsVpContextHeader + VbsVpContextRegister each)."""
    out = [VBS_CONTEXT_HEADER.pack_fields(register_count=len(ids))]
    out += [VBS_REGISTER.pack_fields(vtl=0, register_name=i, mbz=bytes(11), register_value=bytes(16)) for i in ids]
    return b"".join(out)


def test_every_register_of_the_crate_is_accepted():
    regs = parse_vbs_context(_raw_list(*CRATE_X86_REGISTERS))
    assert [r.name for r in regs] == list(CRATE_X86_REGISTERS.values())


@pytest.mark.parametrize("name", sorted(OUTSIDE_THE_CRATE))
def test_a_register_outside_the_crates_set_is_refused(name):
    ctx = _raw_list(0x00020010, OUTSIDE_THE_CRATE[name])
    f = IgvmFile(1, (SupportedPlatform(1, 0, Platform.VSM_ISOLATION),), directives=(PAGE, VpContext(0, 1, 0, ctx)))
    _refused(f, "VP_CONTEXT", f"register #1: register name {OUTSIDE_THE_CRATE[name]:#x} is not one the igvm crate "
                              "accepts")


def test_building_a_list_with_a_register_outside_the_set_says_which():
    with pytest.raises(ValueError, match="cannot hold rax"):
        build_vbs_context([VbsRegister(0, "rax", bytes(16))])

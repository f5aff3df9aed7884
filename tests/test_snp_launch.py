"""SEV-SNP and TDX IGVM files launched as ordinary KVM guests (loaders/igvm/cc_launch.py, vmsa.py, snp_cpuid.py)."""

import lzma
import subprocess
import sys
from pathlib import Path

import pytest

from loaders.errors import LoadError
from loaders.igvm import IgvmBuilder, Platform, read_igvm
from loaders.igvm import model as m
from loaders.igvm.cc_launch import confidential_plan, tdx_initial_state
from loaders.igvm.constants import PageDataFlags, PageDataType
from loaders.igvm.snp_cpuid import read_table, snp_cpuid_table
from loaders.igvm.vmsa import build_vmsa, parse_vmsa, plan_attr_to_vmsa, vmsa_attr_to_plan, vmsa_to_state
from vmm.cli import main

VECTORS = Path(__file__).resolve().parent / "data" / "snp_vectors"
CODE, CPUID_PAGE, SECRETS_PAGE, UNMEASURED_PAGE, VMSA_GPA, STACK_TOP = 0x100000, 0x5000, 0x6000, 0x7000, 0x8000, 0x90000
FLAT32_CODE, FLAT32_DATA = 0xC9B, 0xC93          # VMSA (SVM) attribute form


def _template(*leaves: int) -> bytes:
    """An SNP CPUID template as IGVM files carry it: inputs only."""
    page = bytearray(4096)
    page[0:4] = len(leaves).to_bytes(4, "little")
    for i, fn in enumerate(leaves):
        page[16 + 48 * i:20 + 48 * i] = fn.to_bytes(4, "little")
    return bytes(page)


def snp_guest_igvm(code: bytes, vmsa_overrides: dict | None = None) -> bytes:
    """The snp_cpuid guest as an SNP IGVM built with pyvmm's own writer: code, CPUID template, a SECRETS page
    with data (must read as zero), an unmeasured page, a VMSA for 32-bit protected mode."""
    b = IgvmBuilder()
    bit = b.platform(Platform.SEV_SNP)
    b.add(m.GuestPolicy(0x30000, bit))
    b.pages(CODE, code, bit)
    b.add(m.PageData(CPUID_PAGE, bit, 0, int(PageDataType.CPUID_DATA), _template(0, 1, 0x80000000, 0xD)))
    b.add(m.PageData(SECRETS_PAGE, bit, 0, int(PageDataType.SECRETS), b"\xee" * 4096))
    b.add(m.PageData(UNMEASURED_PAGE, bit, int(PageDataFlags.UNMEASURED), 0, b"UNME".ljust(4096, b"\0")))
    seg = (0x10, FLAT32_DATA, 0xFFFFFFFF, 0)
    fields = dict(cs=(0x8, FLAT32_CODE, 0xFFFFFFFF, 0), ds=seg, es=seg, ss=seg, fs=seg, gs=seg,
                  tr=(0, 0, 0, 0), cr0=0x11, efer=0x1000, rip=CODE, rsp=STACK_TOP, rflags=2, rbp=0x600DF00D,
                  rdi=0x5EC0DE00, g_pat=0x0007040600070406, xcr0=1, sev_features=1)
    fields.update(vmsa_overrides or {})
    b.add(m.VpContext(VMSA_GPA, bit, 0, build_vmsa(**fields)))
    return b.build()


def _guest_code() -> bytes:
    from tests.guests.build import build
    return build("snp_cpuid.S", load_addr=CODE, defines={"CPUID_PAGE": CPUID_PAGE, "SECRETS_PAGE": SECRETS_PAGE,
                                                          "UNMEASURED_PAGE": UNMEASURED_PAGE,
                                                          "STACK_TOP": STACK_TOP})


def test_snp_guest_launches_and_checks_its_registers_cpuid_and_secrets_pages(kvm_ok, toolchain_ok, tmp_path):
    path = tmp_path / "snp.igvm"
    path.write_bytes(snp_guest_igvm(_guest_code()))
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "--igvm-platform", "sev_snp", "-m", "64M",
                        "--timeout", "30"], capture_output=True, text=True, timeout=90)
    assert p.returncode == (0x21 << 1) | 1, p.stderr
    assert p.stderr.count("WITHOUT confidentiality") == 1 and "SEV_SNP" in p.stderr
    assert "0x8000001F reads 0" in p.stderr


def test_a_wrong_register_or_cpuid_table_is_caught_by_the_guest(kvm_ok, toolchain_ok, tmp_path):
    # The guest is a real check: a VMSA value it does not expect makes it fail with that check's code.
    path = tmp_path / "snp.igvm"
    path.write_bytes(snp_guest_igvm(_guest_code(), {"rbp": 1}))
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "--igvm-platform", "sev_snp", "-m", "64M",
                        "--timeout", "30"], capture_output=True, text=True, timeout=90)
    assert p.returncode == (0x31 << 1) | 1, p.stderr


def test_plan_shows_converted_registers_and_the_measurement(tmp_path, capsys):
    path = tmp_path / "snp.igvm"
    path.write_bytes(snp_guest_igvm(b"\xf4"))
    assert main(["igvm", "plan", str(path), "--igvm-platform", "sev_snp", "-m", "64M"]) == 0
    out = capsys.readouterr().out
    assert "platform SEV_SNP" in out
    assert "cs = sel 0x0008 base 0x0 limit 0xffffffff attr 0xc09b" in out
    assert "efer = 0x0" in out and "note: EFER.SVME cleared" in out
    assert "rip = 0x100000" in out and "rsp = 0x90000" in out and "msr 0x277 = 0x7040600070406" in out
    assert "tr = sel 0x0000 base 0x0 limit 0xffff attr 0x008b" in out          # substitute busy TSS
    # the CPUID page (filled at launch) and the secrets page (whose file data is dropped) start as zeroes
    assert "snp-cpuid 0x0000005000" in out and "zero  0x0000005000-0x0000007000" in out
    assert "guest policy 0x30000 (shown, not enforced)" in out
    assert main(["igvm", "measure", str(path)]) == 0
    digest_line = capsys.readouterr().out.splitlines()[0]
    assert digest_line in out


def test_vmsa_of_an_igvm_tooling_x64_file_converts():
    f = read_igvm(lzma.decompress((VECTORS / "bz-x64-enc.igvm.xz").read_bytes()))
    ctx = next(d for d in f.directives if m.is_a(d, "VpContext"))
    raw = parse_vmsa(ctx.data)
    assert raw["efer"] == 0x1D01 and raw["cr3"] >> 51 == 1 and raw["cs"][1] == 0xA9B
    notes = []
    st = vmsa_to_state(ctx.data, notes)
    assert st.efer == 0xD01 and st.cr3 == raw["cr3"] & ((1 << 51) - 1) and st.cr0 == 0x80000001 and st.cr4 == 0x30
    assert st.segments["cs"].attributes == 0xA09B and st.regs["rip"] == 0x1A00200 and st.xcr0 == 1
    plan, _ = confidential_plan(f, "sev_snp", 1)
    # the page tables under CR3 lose the C-bit too, so the walk works with MAXPHYADDR below 52
    tables = {w.gpa: bytes(w.data) for w in plan.writes}
    pml4 = next(data for gpa, data in tables.items() if gpa <= st.cr3 < gpa + len(data))
    entries = [int.from_bytes(pml4[i:i + 8], "little") for i in range(0, 4096, 8)]
    assert any(e & 1 for e in entries) and not any(e >> 51 & 1 for e in entries)
    assert any("C-bit cleared in" in n for n in plan.notes)


def test_segment_attribute_forms_round_trip():
    for a in range(0x1000):
        assert plan_attr_to_vmsa(vmsa_attr_to_plan(a)) == a


def test_cpuid_table_uses_the_template_and_the_guests_values():
    leaves = [(0, 0, False, 0xD, 1, 2, 3), (0xD, 0, True, 7, 0x240, 0x340, 0), (0xD, 1, True, 0xF, 0, 0, 0)]
    t = read_table(snp_cpuid_table(_template(0xD, 0, 0x1234), leaves))
    assert t == [(0xD, 0, 7, 0x240, 0x340, 0), (0, 0, 0xD, 1, 2, 3), (0x1234, 0, 0, 0, 0, 0)]
    # no usable template: the guest's leaves, in order
    assert read_table(snp_cpuid_table(None, leaves)) == [(0, 0, 0xD, 1, 2, 3), (0xD, 0, 7, 0x240, 0x340, 0),
                                                         (0xD, 1, 0xF, 0, 0, 0)]
    many = [(i, 0, False, i, 0, 0, 0) for i in range(100)]
    assert len(read_table(snp_cpuid_table(bytes(4096), many))) == 64


def test_tdx_plan_uses_the_td_start_state():
    b = IgvmBuilder()
    bit = b.platform(Platform.TDX)
    b.pages(0xFFFFF000, b"\x90" * 4096, bit)
    plan, p = confidential_plan(read_igvm(b.build()), "tdx", 2)
    assert p.platform_type == Platform.TDX and sorted(plan.vps) == [0, 1]
    vp1 = plan.vps[1]
    assert vp1.regs["rip"] == 0xFFFFFFF0 and vp1.regs["rsi"] == 1 and vp1.regs["rbx"] == 48
    assert vp1.cr0 == 0x21 and vp1.cr4 == 0x40 and vp1.efer == 0x901 and vp1.segments["cs"].attributes == 0xC09B
    assert tdx_initial_state(0).regs["rsi"] == 0


def test_refusals(tmp_path, capsys):
    b = IgvmBuilder()
    bit = b.platform(Platform.SEV_SNP)
    b.pages(0x100000, b"x", bit)
    with pytest.raises(LoadError, match="no SEV_SNP VP context"):
        confidential_plan(read_igvm(b.build()), "sev_snp", 1)
    with pytest.raises(LoadError, match="declares no TDX platform"):
        confidential_plan(read_igvm(b.build()), "tdx", 1)
    path = tmp_path / "x.igvm"
    path.write_bytes(b.build())
    assert main(["igvm", "plan", str(path), "--igvm-platform", "sev_snp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no SEV_SNP VP context" in err
    assert main(["igvm", "plan", str(path)]) == 2          # default platform choice still refuses SNP
    assert "SEV-SNP" in capsys.readouterr().err


def _it_file(tmp_path, name: str) -> Path:
    path = tmp_path / f"{name}.igvm"
    path.write_bytes(lzma.decompress((VECTORS / f"{name}.igvm.xz").read_bytes()))
    return path


def test_an_igvm_tooling_x86_file_boots_and_prints_its_command_line(kvm_ok, tmp_path):
    # igvmgen -boot_mode x86 built this from a bzImage whose startup_32 is tests/guests/snp_bz32.S
    path = _it_file(tmp_path, "cmdline-x86")
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "--igvm-platform", "sev_snp", "-m", "64M",
                        "--timeout", "30"], capture_output=True, text=True, timeout=90)
    assert p.returncode == (0x21 << 1) | 1, p.stderr
    assert "cmdline=[console=ttyS0 hello=snp]" in p.stdout


def test_an_igvm_tooling_x64_file_with_c_bit_runs_the_linux_probe(kvm_ok, toolchain_ok, tmp_path):
    # igvmgen -boot_mode x64 (C-bit in CR3 and the page tables, EFER.SVME, 1 GiB pages) around the Linux boot probe;
    # on a KVM without 1 GiB pages pyvmm splits them (vmm/gib_split.py), so this runs on every host
    path = _it_file(tmp_path, "probe-x64")
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "--igvm-platform", "sev_snp", "-m", "128M",
                        "--timeout", "30", "--no-reboot"], capture_output=True, text=True, timeout=90)
    assert "header=ok" in p.stdout and "cmdline=[console=ttyS0 probe=snp]" in p.stdout, p.stderr


FLAG = 0x10000


def tdx_guest_igvm(code: bytes) -> bytes:
    b = IgvmBuilder()
    bit = b.platform(Platform.TDX)
    b.pages(0xFFFFF000, code, bit)
    b.add(m.PageData(FLAG, bit, int(PageDataFlags.UNMEASURED), 0, None))
    return b.build()


def test_tdx_guest_starts_every_vcpu_in_the_td_start_state(kvm_ok, toolchain_ok, tmp_path):
    from tests.guests.build import build
    code = build("tdx_start.S", load_addr=0xFFFFF000, defines={"FLAG": FLAG})
    assert len(code) == 4096 and code[0xFF0] == 0xE9
    path = tmp_path / "tdx.igvm"
    path.write_bytes(tdx_guest_igvm(code))
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "--igvm-platform", "tdx", "-m", "64M",
                        "-p", "2", "--timeout", "30"], capture_output=True, text=True, timeout=90)
    assert p.returncode == (0x21 << 1) | 1, p.stderr
    assert p.stderr.count("WITHOUT confidentiality") == 1 and "TDX" in p.stderr
    # one vCPU: the BSP waits in vain for the AP (gives up with 0x35, or the timeout ends it)
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "--igvm-platform", "tdx", "-m", "64M",
                        "--timeout", "10"], capture_output=True, text=True, timeout=90)
    assert p.returncode in ((0x35 << 1) | 1, 124), p.stderr


def test_tdx_file_without_a_reset_page_is_refused(tmp_path, capsys):
    b = IgvmBuilder()
    bit = b.platform(Platform.TDX)
    b.pages(0x100000, b"\x90", bit)
    path = tmp_path / "t.igvm"
    path.write_bytes(b.build())
    assert main(["igvm", "plan", str(path), "--igvm-platform", "tdx", "-m", "64M"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no TDX page at 0xfffff000" in err


def test_snp_aps_get_the_vmsas_the_file_gives():
    from tests.test_measure import snp_file, PATTERN as P
    vmsa = build_vmsa(cs=(8, FLAT32_CODE, 0xFFFFFFFF, 0), rip=0x1234, rflags=2, cr0=0x11)
    f = snp_file([P], [0x100000], vmsa=vmsa, extra_vps=2)
    plan, _ = confidential_plan(f, "sev_snp", 2)
    assert sorted(plan.vps) == [0, 1, 2] and plan.vps[1].regs["rip"] == 0x1234
    assert any("VMSAs for VP [2] unused" in n for n in plan.notes)
    plan, _ = confidential_plan(snp_file([P], [0x100000], vmsa=vmsa), "sev_snp", 3)
    assert sorted(plan.vps) == [0] and any("wait for INIT/SIPI" in n for n in plan.notes)

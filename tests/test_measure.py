"""SEV-SNP launch digest and TDX MRTD (loaders/igvm/measure.py): record vectors, properties, CLI refusals."""

import hashlib
import struct

import pytest
from hypothesis import given, settings, strategies as st

from loaders.igvm import IgvmBuilder, Platform, read_igvm
from loaders.igvm import model as m
from loaders.igvm.constants import HeaderType, PageDataFlags, PageDataType
from loaders.igvm.measure import (PAGE_TYPE_CPUID, PAGE_TYPE_NORMAL, PAGE_TYPE_SECRETS, PAGE_TYPE_UNMEASURED,
                                  PAGE_TYPE_VMSA, PAGE_TYPE_ZERO, measure, page_info, snp_extend, tdx_mr_extend_blocks,
                                  tdx_page_add_block)
from vmm.cli import main

Z48 = bytes(48)
SHA_ZERO_PAGE = hashlib.sha384(bytes(4096)).digest()
PATTERN = bytes(range(256)) * 16


# Single records from 48 zero bytes; the values are what virtee/sev-snp-measure's GCTX (an independent Python
# implementation of the SNP firmware's PAGE_INFO chain) computes for the same pages.
@pytest.mark.parametrize("contents,typ,gpa,expected", [
    (SHA_ZERO_PAGE, PAGE_TYPE_NORMAL, 0, "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100cd2b695f3d10fb687267b978"
                                         "08b27f8f471d943bc6f53a20"),
    (Z48, PAGE_TYPE_ZERO, 0, "70c0ecaab9608f14ebf8ac6f0f07bcd8728f4e2ab30382b539b4de4de904ca9f8ebdf4b2cd3cd84dd996"
                             "bd55dd794676"),
    (Z48, PAGE_TYPE_UNMEASURED, 0x1000, "81475a112c0223cebe1ccb31a0aa2567772871200b33515a3cbbd5ed6a68a8e630902dd8"
                                        "3469ea6553554bfb67111fad"),
    (Z48, PAGE_TYPE_SECRETS, 0x2000, "db3c7f4839ea105f9898622ca76eebb484cd8dfd0cad5d0d839faf5c13eb56c226cce911ddb9"
                                     "adddeb5a75af277ce951"),
    (Z48, PAGE_TYPE_CPUID, 0x3000, "2990ee506a85cab93731fc4d4027e828f369e3e47916ae64d2ced084ed73ffc2e598d3d3631969"
                                   "663234d9e2544faf9d"),
])
def test_page_info_record_vectors(contents, typ, gpa, expected):
    assert snp_extend(Z48, contents, typ, gpa).hex() == expected


def test_page_info_layout_and_a_two_record_chain():
    rec = page_info(b"\x11" * 48, b"\x22" * 48, PAGE_TYPE_VMSA, 0xFFFFFFFFF000)
    assert len(rec) == 0x70 and rec[:48] == b"\x11" * 48 and rec[48:96] == b"\x22" * 48
    assert rec[0x60:] == bytes.fromhex("7000020000000000" "00f0ffffffff0000")
    ld = snp_extend(Z48, hashlib.sha384(PATTERN).digest(), PAGE_TYPE_NORMAL, 0x100000)
    ld = snp_extend(ld, SHA_ZERO_PAGE, PAGE_TYPE_VMSA, 0xFFFFFFFFF000)
    assert ld.hex() == ("139aacede74102c1e2e9a865c6deff0ad9f656001cc3e8fe9a4186b99d9cd406af0f376e4c81651be6b833d6"
                        "f4ae2a0e")   # sev-snp-measure: update_normal_pages + update_vmsa_page


def test_tdx_blocks_follow_the_module_layout():
    add = tdx_page_add_block(0xFFFFF000)
    assert len(add) == 128 and add[:16] == b"MEM.PAGE.ADD\0\0\0\0" and add[16:24] == struct.pack("<Q", 0xFFFFF000)
    assert not any(add[24:])
    ext = tdx_mr_extend_blocks(0x100, b"\xab" * 256)
    assert len(ext) == 384 and ext[:16] == b"MR.EXTEND" + bytes(7) and ext[128:] == b"\xab" * 256


def _tdx_file(*pages) -> m.IgvmFile:
    b = IgvmBuilder()
    bit = b.platform(Platform.TDX)
    for gpa, data, flags in pages:
        b.add(m.PageData(gpa, bit, flags, 0, data))
    return read_igvm(b.build())


@pytest.mark.parametrize("pages,expected", [
    ((), "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"),
    (((0, None, PageDataFlags.UNMEASURED),),
     "8f3e9a8aca6784eab874f7aa4dda5d49104a88047f1f86695ef2a88f5691a90e34aac48ce45ffa1f5a23c7d62980d570"),
    (((0, None, 0),), "236f0efa607ff8843f1855d7ef80dc3dda8fb455787a186b8787212951eab0096e3193bb26f817c2b63c21f5e10f9938"),
    (((0xFFFFF000, PATTERN, 0),),
     "cd9d793217c8e5918ad18eca449ba10dcfc5faafc19ceeae46b925d054f3b68f85127312438aeba5bc187d9dc73a20fa"),
])
def test_tdx_mrtd_vectors(pages, expected):
    # PAGE.ADD, then 16 MR.EXTENDs of 256 bytes for a measured page, as KVM_TDX_INIT_MEM_REGION issues them.
    manual = hashlib.sha384()
    for gpa, data, flags in pages:
        manual.update(tdx_page_add_block(gpa))
        if not flags & PageDataFlags.UNMEASURED:
            page = data or bytes(4096)
            for off in range(0, 4096, 256):
                manual.update(tdx_mr_extend_blocks(gpa + off, page[off:off + 256]))
    res = measure(_tdx_file(*pages))
    assert res.platform == Platform.TDX and res.hex == expected == manual.hexdigest()


# --- properties on SNP files built with pyvmm's writer -----------------------------------
VMSA_GPA = 0x40000


def snp_file(pages: list[bytes | None], gpas: list[int], flags: list[int] | None = None, vmsa: bytes = PATTERN,
             unmeasured: bytes = b"u" * 4096, shared: bytes = b"s" * 4096, cpuid: bytes = b"c" * 4096,
             extra_vps: int = 0) -> m.IgvmFile:
    b = IgvmBuilder()
    bit = b.platform(Platform.SEV_SNP)
    b.add(m.GuestPolicy(0x30000, bit))
    for i, (data, gpa) in enumerate(zip(pages, gpas)):
        b.add(m.PageData(gpa, bit, (flags or [0] * len(pages))[i], 0, data))
    b.add(m.PageData(0x20000, bit, int(PageDataFlags.UNMEASURED), 0, unmeasured))
    b.add(m.PageData(0x21000, bit, int(PageDataFlags.SHARED), 0, shared))
    b.add(m.PageData(0x22000, bit, 0, int(PageDataType.CPUID_DATA), cpuid))
    b.add(m.PageData(0x23000, bit, 0, int(PageDataType.SECRETS), None))
    b.parameter(HeaderType.VP_COUNT_PARAMETER, 0x24000, bit, size=0x2000)
    b.add(m.VpContext(VMSA_GPA, bit, 0, vmsa))
    for vp in range(1, 1 + extra_vps):
        b.add(m.VpContext(VMSA_GPA + vp * 0x1000, bit, vp, vmsa))
    return read_igvm(b.build())


def digest(f: m.IgvmFile, vcpus: int = 1) -> bytes:
    return measure(f, "sev_snp", vcpus).digest


page_st = st.binary(min_size=1, max_size=64).map(lambda b: b.ljust(4096, b"\0"))
pages_st = st.lists(page_st, min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(pages_st, st.data())
def test_any_measured_byte_changes_the_digest(pages, data):
    gpas = [0x100000 + 0x1000 * i for i in range(len(pages))]
    base = digest(snp_file(pages, gpas))
    i = data.draw(st.integers(0, len(pages) - 1))
    off = data.draw(st.integers(0, 4095))
    changed = list(pages)
    changed[i] = pages[i][:off] + bytes([pages[i][off] ^ data.draw(st.integers(1, 255))]) + pages[i][off + 1:]
    assert digest(snp_file(changed, gpas)) != base
    vmsa = bytearray(PATTERN)
    vmsa[data.draw(st.integers(0, 4095))] ^= 0x80
    assert digest(snp_file(pages, gpas, vmsa=bytes(vmsa))) != base


@settings(max_examples=40, deadline=None)
@given(pages_st, page_st, page_st, page_st)
def test_unmeasured_shared_and_cpuid_bytes_do_not_change_it(pages, unmeasured, shared, cpuid):
    gpas = [0x100000 + 0x1000 * i for i in range(len(pages))]
    assert digest(snp_file(pages, gpas)) == digest(snp_file(pages, gpas, unmeasured=unmeasured, shared=shared,
                                                             cpuid=cpuid))


@settings(max_examples=40, deadline=None)
@given(pages_st, st.data())
def test_a_pages_gpa_or_type_changes_the_digest(pages, data):
    gpas = [0x100000 + 0x1000 * i for i in range(len(pages))]
    base = digest(snp_file(pages, gpas))
    i = data.draw(st.integers(0, len(pages) - 1))
    moved = list(gpas)
    moved[i] = data.draw(st.integers(0x200, 0xFFFFF).filter(lambda p: p * 0x1000 not in gpas)) * 0x1000
    assert digest(snp_file(pages, moved)) != base
    flags = [0] * len(pages)
    flags[i] = int(PageDataFlags.UNMEASURED)
    assert digest(snp_file(pages, gpas, flags)) != base
    flags[i] = int(PageDataFlags.SHARED)
    assert digest(snp_file(pages, gpas, flags)) != base


@settings(max_examples=20, deadline=None)
@given(pages_st, st.integers(1, 8), st.integers(1, 8), st.integers(0, 3))
def test_the_vcpu_count_changes_the_digest(pages, a, b, extra_vps):
    f = snp_file(pages, [0x100000 + 0x1000 * i for i in range(len(pages))], extra_vps=extra_vps)
    assert (digest(f, a) == digest(f, b)) == (a == b)
    assert measure(f, None, a).counts["vmsa"] == a


def test_snp_record_counts_and_zero_page_rules():
    f = snp_file([PATTERN, None], [0x100000, 0x101000])
    res = measure(f)
    assert res.counts == {"normal": 1, "normal (zeroes)": 1, "unmeasured": 3, "shared (not measured)": 1,
                          "cpuid": 1, "secrets": 1, "vmsa": 1}
    # a page without data is a NORMAL page of zeroes (QEMU/KVM, igvm-tooling); --native-zero makes it ZERO
    assert measure(f, native_zero=True).digest != res.digest
    ld = snp_extend(Z48, hashlib.sha384(PATTERN).digest(), PAGE_TYPE_NORMAL, 0x100000)
    ld = snp_extend(ld, SHA_ZERO_PAGE, PAGE_TYPE_NORMAL, 0x101000)
    ld = snp_extend(ld, Z48, PAGE_TYPE_UNMEASURED, 0x20000)      # the shared page at 0x21000 adds nothing
    ld = snp_extend(ld, Z48, PAGE_TYPE_CPUID, 0x22000)
    ld = snp_extend(ld, Z48, PAGE_TYPE_SECRETS, 0x23000)
    ld = snp_extend(ld, Z48, PAGE_TYPE_UNMEASURED, 0x24000)      # the 8 KiB parameter area: two records
    ld = snp_extend(ld, Z48, PAGE_TYPE_UNMEASURED, 0x25000)
    ld = snp_extend(ld, hashlib.sha384(PATTERN).digest(), PAGE_TYPE_VMSA, VMSA_GPA)
    assert res.digest == ld


# --- the command line ---------------------------------------------------------------------
def _write(tmp_path, f) -> str:
    from loaders.igvm import write_igvm
    p = tmp_path / "f.igvm"
    p.write_bytes(write_igvm(f))
    return str(p)


def test_cli_measures_tdx_and_picks_the_platform(tmp_path, capsys):
    path = _write(tmp_path, _tdx_file((0, None, 0)))
    assert main(["igvm", "measure", path]) == 0
    out = capsys.readouterr().out
    assert "TDX MRTD (1 vCPU): 236f0efa607ff884" in out and "PAGE.ADD 1" in out and "MR.EXTEND 16" in out


@pytest.mark.parametrize("argv,words", [
    (["-p", "0"], "outside 1..255"),
    (["-p", "x"], "not a whole number"),
    (["--igvm-platform", "native"], "invalid choice"),
    (["--igvm-platform", "tdx"], "declares no TDX platform"),
])
def test_cli_refusals_are_one_line_status_2(tmp_path, capsys, argv, words):
    path = _write(tmp_path, snp_file([PATTERN], [0x100000]))
    assert main(["igvm", "measure", path, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_cli_refuses_files_without_snp_or_tdx(tmp_path, capsys):
    b = IgvmBuilder()
    bit = b.platform(Platform.NATIVE)
    b.pages(0x100000, b"x", bit)
    path = _write(tmp_path, b.file())
    assert main(["igvm", "measure", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither SEV_SNP nor TDX" in err
    (tmp_path / "bad.igvm").write_bytes(b"IGVM" + bytes(40))
    assert main(["igvm", "measure", str(tmp_path / "bad.igvm")]) == 2
    assert "format version 0" in capsys.readouterr().err


@settings(max_examples=30, deadline=None)
@given(page_st, page_st, st.integers(0, 4095))
def test_tdx_mrtd_sees_measured_bytes_and_gpas_not_unmeasured_bytes(page, other, off):
    base = measure(_tdx_file((0x100000, page, 0), (0x200000, other, PageDataFlags.UNMEASURED)))
    flipped = page[:off] + bytes([page[off] ^ 1]) + page[off + 1:]
    assert measure(_tdx_file((0x100000, flipped, 0), (0x200000, other, PageDataFlags.UNMEASURED))).digest != base.digest
    assert measure(_tdx_file((0x101000, page, 0), (0x200000, other, PageDataFlags.UNMEASURED))).digest != base.digest
    assert measure(_tdx_file((0x100000, page, 0), (0x200000, flipped, PageDataFlags.UNMEASURED))).digest == base.digest
    assert measure(_tdx_file((0x100000, page, 0), (0x200000, other, PageDataFlags.UNMEASURED)), vcpus=4).digest \
        == base.digest                                          # VP state is not part of MRTD

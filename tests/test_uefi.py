"""`--igvm type=uefi`: the config blob (built, parsed, walked by a guest), R12, the parameter-block form,
build-uefi with SEC discovery, and every bad option."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from loaders.acpi import build_madt, build_slit, build_srat
from loaders.errors import LoadError
from loaders.igvm import IgvmBuilder, Platform, VpContext, read_igvm
from loaders.igvm.pack import native_context_for, pack_flat_image
from loaders.uefi.blob import (BlobType, Flags, UefiMachine, build_config_blob, flags_for, mtrrs_initialized_at_load,
                               parse_config_blob)
from loaders.uefi.firmware import build_uefi_igvm, sec_entry_offset
from vmm.api import run_igvm
from vmm.memory import ram_layout
from vmm.pc_layout import PC
from tests.guests.build import build
from tests.uefi_firmware import CODE_GPA, CODE_OFFSET, synthetic_firmware


def _machine(**kw) -> UefiMachine:
    args = dict(cpus=1, ram=[(0, 2 << 30)], entropy=bytes(range(64)), bios_guid=bytes(16),
                acpi_tables=[build_madt(1, PC), build_srat(1, [(0, 2 << 30)])])
    args.update(kw)
    return UefiMachine(**args)


def test_worked_example_of_the_spec():
    """One VP, 2 GiB, serial with COM1 console, no frontpage, MTRRs set at load, 90- and 104-byte tables."""
    m = _machine(acpi_tables=[bytes(90), bytes(104)], mtrrs_initialized=True, vmbus=True)
    blob = build_config_blob(m)
    assert flags_for(m) == 0x900040C1
    assert struct.unpack_from("<II", blob, 8) == (10, 0x1C8) and len(blob) == 0x1C8


@given(st.integers(1, 255), st.integers(1, 1 << 14).map(lambda mib: mib << 20))
def test_blob_round_trips_through_the_firmware_checks(cpus, memory):
    ram = ram_layout(memory)
    blob = build_config_blob(_machine(cpus=cpus, ram=ram, acpi_tables=[build_madt(cpus, PC), build_srat(cpus, ram)]))
    parsed = parse_config_blob(blob)
    assert [(b, n) for b, n, _ in parsed.memory_map()] == ram
    assert parsed.processor_information()[:2] == (cpus, cpus)
    assert [t[:4] for t in parsed.acpi_tables()] == [b"APIC", b"SRAT"]
    assert parsed.first(BlobType.ENTROPY) == bytes(range(64))


@settings(max_examples=300)
@given(st.data())
def test_mutated_blob_is_accepted_or_refused_cleanly(data):
    blob = bytearray(build_config_blob(_machine()))
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        parse_config_blob(bytes(blob[:cut]))
    except LoadError:
        pass


def test_gic_is_a_16_byte_structure_not_an_acpi_table():
    """OpenVMM config.rs `Gic {gic_distributor_base: u64, gic_redistributors_base: u64}`, mu_msvm UEFI_CONFIG_GIC:
    a header and two little-endian u64s, never handed on as an ACPI table."""
    blob = build_config_blob(_machine(gic=(0xFFFF0000, 0xEFFEE000)))
    typ, length, gicd, gicr = struct.unpack_from("<IIQQ", blob, blob.index(struct.pack("<II", 0x23, 24)))
    assert (typ, length, gicd, gicr) == (0x23, 24, 0xFFFF0000, 0xEFFEE000)
    parsed = parse_config_blob(blob)
    assert parsed.gic() == (0xFFFF0000, 0xEFFEE000)
    assert [t[:4] for t in parsed.acpi_tables()] == [b"APIC", b"SRAT"]     # the Gic is not among them
    assert parse_config_blob(build_config_blob(_machine())).gic() is None   # an x86-64 machine has none
    from vmm.plan_text import blob_lines
    assert "  GIC: distributor 0xffff0000 redistributors 0xeffee000" in blob_lines(blob)


def _with_structure(typ: int, payload: bytes) -> bytes:
    """A valid blob with one more structure appended and the count header patched (by hand, not by the writer)."""
    blob = bytearray(build_config_blob(_machine()))
    payload += bytes(-len(payload) % 8)
    blob += struct.pack("<II", typ, 8 + len(payload)) + payload
    count, _ = struct.unpack_from("<II", blob, 8)
    struct.pack_into("<II", blob, 8, count + 1, len(blob))
    return bytes(blob)


def test_a_gic_of_another_length_is_refused():
    assert parse_config_blob(_with_structure(0x23, struct.pack("<QQ", 1, 2))).gic() == (1, 2)
    for payload in (struct.pack("<Q", 1), struct.pack("<QQQ", 1, 2, 3)):
        with pytest.raises(LoadError, match="GIC at 0x[0-9a-f]+ is .* bytes, must be 24"):
            parse_config_blob(_with_structure(0x23, payload))


def test_slit_type_structure_is_an_acpi_table_but_pcie_apertures_are_not():
    slit = build_slit(2)
    assert parse_config_blob(_with_structure(0x20, slit)).acpi_tables()[-1] == slit
    assert len(parse_config_blob(_with_structure(0x28, bytes(32))).acpi_tables()) == 2
    with pytest.raises(LoadError, match="does not hold its table"):
        parse_config_blob(_with_structure(0x22, bytes(16)))


def test_mtrrs_initialized_at_load_unless_the_file_disables_them():
    """pyvmm's vCPUs start with MTRRs enabled, so the flag is set (as OpenVMM always sets it) unless the file's
    context writes MTRR_DEF_TYPE with E (bit 11) clear."""
    assert mtrrs_initialized_at_load(None) and mtrrs_initialized_at_load(0xC00)
    assert not mtrrs_initialized_at_load(0) and not mtrrs_initialized_at_load(0x406)
    assert flags_for(_machine()) & Flags.MTRRS_INITIALIZED_AT_LOAD
    assert not flags_for(_machine(mtrrs_initialized=False)) & Flags.MTRRS_INITIALIZED_AT_LOAD


def test_blob_missing_a_required_structure_is_refused():
    blob = bytearray(build_config_blob(_machine()))
    struct.pack_into("<I", blob, 16, 0x7F)        # BIOS_INFORMATION becomes an unknown type
    with pytest.raises(LoadError, match="lacks required structures: BIOS_INFORMATION"):
        parse_config_blob(blob)


# --- SEC discovery and build-uefi ---------------------------------------------------------------------------
def test_sec_entry_is_found_by_walking_the_volume():
    assert sec_entry_offset(synthetic_firmware(b"\xf4")) == CODE_OFFSET


def test_te_image_entry():
    img = bytearray(synthetic_firmware(b""))
    pe = CODE_OFFSET - 0x160
    img[pe:pe + 0x44] = bytes(0x44)
    img[pe:pe + 2] = b"VZ"
    struct.pack_into("<HI", img, pe + 6, 0x28, 0x1000)   # stripped size 0x28, entry 0x1000
    assert sec_entry_offset(bytes(img)) == pe + 0x1000 + 40 - 0x28


@pytest.mark.parametrize("mutate,words", [
    (lambda img: img[:0x100000], "exactly 0x600000"),
    (lambda img: bytes(0x600000), "no firmware volume"),
    (lambda img: img[:0x5E0048 + 18] + b"\x05" + img[0x5E0048 + 19:0x5E0078 + 18] + b"\x05" + img[0x5E0078 + 19:],
     "no SECURITY_CORE"),
])
def test_bad_firmware_images(tmp_path, mutate, words):
    fw = tmp_path / "fw.fd"
    fw.write_bytes(mutate(synthetic_firmware(b"\xf4")))
    p = subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-uefi", "--firmware", str(fw), "-o",
                        str(tmp_path / "o.igvm")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, p.stderr


def test_build_uefi_makes_igvmfilegens_layout():
    f = read_igvm(build_uefi_igvm(synthetic_firmware(b"\xf4")))
    assert f.version == 1 and f.platform_types() == [Platform.VSM_ISOLATION]
    inserts = [d.gpa for d in f.directives if type(d).__name__ == "ParameterInsert"]
    assert inserts == [0x70A000, 0x70B000, 0x70C000, 0x720000, 0x734000]
    req = [d for d in f.directives if type(d).__name__ == "RequiredMemory"]
    assert [(r.gpa, r.number_of_bytes) for r in req] == [(0, 0x75C000)]
    info = next(d for d in f.directives if type(d).__name__ == "PageData" and d.gpa == 0x709000)
    assert struct.unpack_from("<IIQ", info.data) == (83, 0, 0xFFFFF)


# --- launching ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe_igvm(tmp_path_factory, toolchain_ok):
    path = tmp_path_factory.mktemp("uefi") / "probe.igvm"
    path.write_bytes(pack_flat_image(build("uefi_start.S", extra_sources=("uefi_probe.c",))))
    return path


@pytest.mark.usefixtures("kvm_ok")
@pytest.mark.parametrize("cpus", [1, 4])
@pytest.mark.parametrize("memory", [256 << 20, 5 << 30])
def test_guest_walks_the_blob(probe_igvm, cpus, memory):
    out = run_igvm(probe_igvm, igvm_type="uefi", memory=memory, cpus=cpus, timeout=20)
    assert out.status == 0x21, out.text
    lines = out.text.splitlines()
    assert lines[0] == "uefi probe: r12=0x709000"
    assert lines[1].startswith("blob count=12 size=")
    assert [x for x in lines if x.startswith("memory ")] == [f"memory {g:#x}-{g + s:#x} flags=0"
                                                             for g, s in ram_layout(memory)]
    assert f"processors={cpus} max={cpus}" in lines
    assert "entropy=nonzero" in lines and "structures=ok" in lines
    assert "flags=0xd00040c1" in lines          # serial, hibernate, COM1, no frontpage, MTRRs at load, no VMBus, PCI
    assert [x.split(" len=")[0] for x in lines if x.startswith("acpi ")] == \
        ["acpi sig=APIC", "acpi sig=SRAT", "acpi sig=SLIT", "acpi sig=PPTT"]
    assert all(x.endswith("checksum=ok") for x in lines if x.startswith("acpi "))


@pytest.mark.usefixtures("kvm_ok")
@pytest.mark.parametrize("def_type,flags", [(0xC00, "flags=0xd00040c1"), (0, "flags=0xc00040c1")])
def test_a_file_that_disables_mtrrs_clears_the_flag(toolchain_ok, def_type, flags):
    """The guest reads the Flags structure: set when the file's VBS context enables MTRRs (igvmfilegen's 0xC00),
    clear when it writes MTRR_DEF_TYPE with E clear."""
    raw = pack_flat_image(build("uefi_start.S", extra_sources=("uefi_probe.c",)), platform=Platform.VSM_ISOLATION,
                          regs={"mtrr_def_type": def_type})
    out = run_igvm(raw, igvm_type="uefi", memory="256M", timeout=20)
    assert out.status == 0x21 and flags in out.text.splitlines(), out.text


@pytest.mark.usefixtures("kvm_ok")
def test_r12_set_by_the_file_is_kept(toolchain_ok):
    raw = pack_flat_image(build("uefi_start.S", extra_sources=("uefi_probe.c",)), regs={"r12": 0x5000})
    out = run_igvm(raw, igvm_type="uefi", memory="256M", timeout=20)
    assert out.text.splitlines()[:2] == ["uefi probe: r12=0x5000", "r12 is not the blob address"]


@pytest.mark.usefixtures("kvm_ok")
@pytest.mark.parametrize("native", [False, True])
def test_parameter_block_form_gets_parameters_not_the_blob(tmp_path, toolchain_ok, native):
    fw = synthetic_firmware(build("uefi_start.S", extra_sources=("uefi_probe.c",), load_addr=CODE_GPA))
    path = tmp_path / "fw.igvm"
    path.write_bytes(build_uefi_igvm(fw, native=native))
    out = run_igvm(path, igvm_type="uefi", memory="2G", cpus=3, timeout=20)
    assert out.status == 0x21, out.text
    assert out.text.splitlines() == ["uefi probe: r12=0x709000", "parameter block pages=83", "vp_count=3",
                                     "memory 0x0-0x80000000 flags=0", "madt sig=APIC len=106 checksum=ok",
                                     "srat sig=SRAT len=136 checksum=ok"]
    plan = subprocess.run([sys.executable, "-m", "vmm", "igvm", "plan", "--igvm", f"type=uefi,path={path}"],
                          capture_output=True, text=True, timeout=60).stdout
    assert "UEFI config blob" not in plan and "param 0x000070c000-0x0000720000" in plan


def test_plain_igvm_form_still_gets_no_blob_and_no_r12(probe_igvm, kvm_ok):
    out = run_igvm(probe_igvm, memory="256M", timeout=20)
    assert out.text.splitlines()[0] == "uefi probe: r12=0x0"


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vmm", *args], capture_output=True, text=True, timeout=60, env=env)


def test_blob_that_would_overlap_the_file_is_refused(tmp_path):
    b = IgvmBuilder()
    mask = b.platform(Platform.NATIVE)
    b.pages(0x70A000, b"mine", mask)
    b.add(VpContext(0, mask, 0, native_context_for(0x70A000)))
    path = tmp_path / "f.igvm"
    path.write_bytes(b.build())
    p = _run("--igvm", f"type=uefi,path={path}", "-p", "200")   # a blob longer than one page
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "type=uefi: page data (header #1) at 0x70a000-0x70b000 overlaps UEFI config blob" in p.stderr


@pytest.mark.parametrize("args,words", [
    (["--igvm", "type=uefi"], "missing path=FILE"),
    (["--igvm", "path=,type=uefi"], "missing path=FILE"),
    (["--igvm", "type=uefi,path=x,firmware=y"], "unknown key 'firmware'"),
    (["--igvm", "type=pcat,path=x"], "unknown type 'pcat'"),
    (["--igvm", "type=uefi,path=x", "--igvm-relocation", "auto"], "cannot be combined with it"),
    (["--igvm", "type=uefi,path=x", "--igvm-relocation", "absolute=0x1000000"], "cannot be combined with it"),
    (["--igvm", "type=uefi,path=x", "--igvm-relocation", "sideways"], "use file, auto or absolute=ADDR"),
    (["--igvm", "type=linux,path=/nonexistent.igvm"], "cannot read /nonexistent.igvm"),
    (["--igvm", "uefi,path=x"], "is not key=value"),
])
def test_bad_uefi_options(args, words, tmp_path):
    p = _run(*args, env=dict(os.environ, PYVMM_KVM_DEVICE=str(tmp_path / "no-kvm")))   # checked before KVM
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, p.stderr

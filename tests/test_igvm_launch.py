"""Launching IGVM files: parameter areas as the guest sees them, plans, refusals of bad files, the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from loaders.errors import LoadError
from loaders.igvm import (ErrorRange, HeaderType as H, IgvmBuilder, PageData, ParameterArea, ParameterInsert,
                          ParameterUsage, Platform, RelocatableRegion, RequiredMemory, VpContext)
from loaders.igvm.pack import native_context_for, vbs_context_for
from vmm.api import run_igvm
from vmm.igvm_source import IgvmSpec, prepare_igvm
from vmm.memory import ram_layout

from tests.igvm_guests import flat_igvm, params_igvm

pytestmark = pytest.mark.usefixtures("kvm_ok", "toolchain_ok")


def _expected_report(cpus: int, memory: int, cmdline: str) -> list[str]:
    ram = ram_layout(memory)
    lines = [f"vp_count={cpus}"]
    lines += [f"memory {g:#x}-{g + s:#x} type=0" for g, s in ram]
    lines.append(f"cmdline=[{cmdline}]")
    return lines


@pytest.mark.parametrize("platform,version", [(Platform.NATIVE, 2), (Platform.VSM_ISOLATION, 1),
                                              (Platform.NATIVE, 1)])
@pytest.mark.parametrize("cpus,memory", [(1, 256 << 20), (4, 5 << 30)])
def test_guest_reads_every_parameter_area(tmp_path, platform, version, cpus, memory):
    path = tmp_path / "params.igvm"
    path.write_bytes(params_igvm(platform, version))
    out = run_igvm(path, memory=memory, cpus=cpus, cmdline="console=ttyS0 quiet", timeout=20)
    assert out.status == 0x21, out.text
    lines = out.text.splitlines()
    assert lines[0] == "params guest"
    assert lines[1:1 + len(_expected_report(cpus, memory, ""))] == _expected_report(cpus, memory, "console=ttyS0 quiet")
    assert f"madt: sig=APIC len={98 + 8 * (cpus - 2)} checksum=ok lapics={cpus}" in lines
    ram_bytes = sum(s for _, s in ram_layout(memory))
    assert any(line.startswith("srat: sig=SRAT") and "checksum=ok" in line and f"cpus={cpus}" in line
               and f"bytes={ram_bytes:#x}" in line for line in lines)
    assert "slit: sig=SLIT len=45 checksum=ok localities=1" in lines
    assert any(line.startswith("pptt: sig=PPTT") and f"leaves={cpus}" in line and "checksum=ok" in line
               for line in lines)
    assert "environment=0x0" in lines


def test_plan_is_deterministic_and_names_every_range(tmp_path):
    path = tmp_path / "params.igvm"
    path.write_bytes(params_igvm())
    args = [sys.executable, "-m", "vmm", "igvm", "plan", str(path), "-p", "2", "-m", "512M", "--cmdline", "abc"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=60)
    second = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    text = first.stdout
    assert "platform NATIVE (mask 0x1)" in text
    assert "param 0x0000021000-0x0000022000 0x1000 sha256:" in text and "area 1: MEMORY_MAP@0x0" in text
    assert "parameter 1 MEMORY_MAP@0x0: 0x0-0x20000000 MEMORY" in text
    assert "parameter 2 COMMAND_LINE@0x0: 'abc'" in text
    assert "parameter 0 VP_COUNT_PARAMETER@0x0: 2 VPs" in text
    assert "checksum ok: 1 io_apic, 2 override, 1 lapic_nmi, 2 local_apic" in text
    assert "  rip = 0x100000" in text and "  cr3 = 0x9000" in text
    # a different machine gives a different memory map hash: the plan really reflects -m
    other = subprocess.run(args[:-4] + ["-m", "1G", "--cmdline", "abc"], capture_output=True, text=True, timeout=60)
    assert other.stdout != text


def test_hello_through_the_cli_on_a_vsm_file(tmp_path):
    path = tmp_path / "hello.igvm"
    path.write_bytes(flat_igvm("hello.S", Platform.VSM_ISOLATION))
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", f"path={path}", "-m", "128M"], capture_output=True,
                       timeout=60)
    assert p.returncode == 0x21 and p.stdout == b"Hello from a pyvmm guest\n", p.stderr


def test_reset_relaunches_unless_no_reboot(tmp_path):
    path = tmp_path / "reset.igvm"
    path.write_bytes(flat_igvm("i8042_reset.S"))
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "-m", "64M", "--no-reboot"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "-m", "64M", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert "relaunching" in p.stderr          # relaunched from the file, then stopped by the reset-storm guard
    assert p.returncode == 3 and "times within a second" in p.stderr


# --- files pyvmm must refuse: one line, status 2 ------------------------------------------------------------
def _base(platform=Platform.NATIVE, version=2, context=True, image_gpa=0x100000):
    b = IgvmBuilder(version=version)
    mask = b.platform(platform)
    b.pages(image_gpa, b"\xf4" * 16, mask)
    if context:
        ctx = native_context_for(image_gpa) if platform == Platform.NATIVE else vbs_context_for(image_gpa)
        b.add(VpContext(0, mask, 0, ctx))
    return b, mask


def _bad_files():
    cases = {}
    b, mask = _base()
    b.add(ParameterArea(4096, 0))
    b.add(ParameterUsage(H.MADT, 0, 4080))
    b.add(ParameterInsert(0x20000, mask, 0))
    cases["parameter too big"] = (b.build(), [], "MADT needs")
    b, mask = _base(image_gpa=0x50000000)
    cases["outside RAM"] = (b.build(), ["-m", "256M"], "not inside guest RAM")
    b, mask = _base()
    b.pages(0xC0000000, b"x", mask)
    cases["MMIO hole"] = (b.build(), ["-m", "5G"], "0xc0000000-0xc0001000 is not inside guest RAM")
    b, mask = _base()
    b.add(ParameterArea(4096, 0))
    b.add(ParameterUsage(H.VP_COUNT_PARAMETER, 0, 0))
    b.add(ParameterInsert(0x100000, mask, 0))
    cases["overlap"] = (b.build(), [], "overlaps")
    b, _ = _base(context=False)
    cases["no VP context"] = (b.build(), [], "no NATIVE VP context for VP 0")
    b, mask = _base(platform=Platform.SEV_SNP, context=False)
    cases["SNP only"] = (b.build(), [], "no platform pyvmm can launch: the file declares SEV_SNP")
    b, mask = _base()
    b.add(PageData(0x200000, mask, 0, 2, b"\0" * 4096))
    cases["CPUID page"] = (b.build(), [], "CPUID_DATA pages")
    b, mask = _base(platform=Platform.VSM_ISOLATION, version=1)
    b.add(RelocatableRegion(mask, 0, 0, 0, 0x200000, 0x200000, 0x200000, 0x200000, 0x10000000))
    cases["relocation"] = (b.build(), [], "relocation is not supported")
    b, mask = _base()
    b.add(ParameterArea(4096, 0))
    b.add(ParameterUsage(H.DEVICE_TREE, 0, 0))
    b.add(ParameterInsert(0x20000, mask, 0))
    cases["device tree"] = (b.build(), [], "DEVICE_TREE")
    b, mask = _base()
    b.add(RequiredMemory(0x30000000, mask, 0x100000))
    cases["required memory"] = (b.build(), ["-m", "512M"], "give more memory with -m")
    b, mask = _base(platform=Platform.VSM_ISOLATION, version=1, context=False)
    b.platforms[0] = b.platforms[0].__class__(mask, 2, Platform.VSM_ISOLATION)
    b.add(VpContext(0, mask, 0, vbs_context_for(0x100000, vtl=2)))
    cases["VTL2 only"] = (b.build(), [], "only has contexts for VTL [2]")
    b, mask = _base()
    b.add(ErrorRange(0x300000, mask, 0x1000))
    b.add(PageData(0x300000, mask, 0, 0, b"y" * 4096))
    cases["error range overlap"] = (b.build(), [], "overlaps")
    good, _ = _base()
    cases["truncated"] = (good.build()[:-100], [], "does not match the file's length")
    cases["not IGVM"] = (b"\x7fELF" + bytes(200), [], "magic")
    return cases


BAD = _bad_files()


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_is_one_line_and_status_2(tmp_path, name):
    raw, extra, words = BAD[name]
    path = tmp_path / "bad.igvm"
    path.write_bytes(raw)
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), *extra], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"pyvmm: error: {path}: ") and words in p.stderr, p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("spec,words", [
    ("type=uefi", "missing path=FILE"), ("path=a,color=red", "unknown key 'color'"),
    ("type=bios,path=x", "unknown type 'bios'"), ("path=a,path=b", "path= given twice"),
    ("path=/nonexistent/x.igvm", "cannot read /nonexistent/x.igvm"),
])
def test_bad_igvm_spec(spec, words):
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", spec], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, p.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_plan_or_refuse(tmp_path, data):
    """Any byte flipped: planning either succeeds (and the plan fits RAM) or raises LoadError, nothing else."""
    raw = bytearray(PARAMS_FILE)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    path = tmp_path / "m.igvm"
    path.write_bytes(raw)
    try:
        prepared = prepare_igvm(IgvmSpec(str(path)), 64 << 20, 2)
    except LoadError:
        return
    prepared.plan.check(prepared.host.ram)


PARAMS_FILE = b""


@pytest.fixture(autouse=True, scope="module")
def _params_file(toolchain_ok):
    global PARAMS_FILE
    PARAMS_FILE = params_igvm()


def test_reset_storm_with_64_vcpus_ends_cleanly(tmp_path):
    """Regression: kicking a vCPU whose thread had already ended crashed the VMM (SIGSEGV) on relaunch."""
    b, _ = _base()            # no page tables: the BSP triple-faults at once, every launch
    path = tmp_path / "tf.igvm"
    path.write_bytes(b.build())
    for _ in range(2):
        p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "-p", "64", "-m", "64M"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 3 and "times within a second" in p.stderr, (p.returncode, p.stderr[-300:])

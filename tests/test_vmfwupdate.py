"""vmfwupdate end to end: guests (tests/guests/vmfwupdate.c, one build per stage) find etc/vmfwupdate, check the
read-back rules, load the next stage's IGVM (made by pyvmm's IGVM writer here) from fw_cfg into their RAM,
request it and reset; pyvmm must launch it, keep RAM, refuse what the issue's rules refuse, and keep the new
firmware for later resets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loaders.igvm import HeaderType as H, Platform
from loaders.igvm.builder import IgvmBuilder
from loaders.igvm.pack import ParamSpec, pack_flat_image
from tests.guests.run import fnv1a
from vmm.machine import Outcome

IMG_ADDR = 0x2000000
CAPS = "0x100000000"
PATTERN_FNV = f"{fnv1a(bytes((i * 7 + (i >> 8)) & 0xFF for i in range(0x10000))):#x}"

pytestmark = pytest.mark.usefixtures("kvm_ok", "toolchain_ok")


def stage_image(stage: int, **defines: int) -> bytes:
    from tests.guests.build import build
    return build("start64.S", extra_sources=("vmfwupdate.c",), defines={"STAGE": stage, **defines})


def stage_igvm(stage: int, params: tuple[ParamSpec, ...] = (), **defines: int) -> bytes:
    return pack_flat_image(stage_image(stage, **defines), params=params)


def run(stage1: bytes, files: dict[str, bytes], memory: str = "128M", no_reboot: bool = False, **kw):
    from vmm.api import run_igvm
    return run_igvm(stage1, memory=memory, fw_cfg=files, no_reboot=no_reboot, timeout=60, **kw)


def stderr_lines(capfd, word: str = "vmfwupdate") -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if word in line]


def test_discovery_and_plain_reset_keeps_ram_and_the_firmware(capfd):
    out = run(stage_igvm(1), {})
    lines = out.text.splitlines()
    assert out.status == (1 << 1) | 1, out.text
    assert lines[:3] == ["stage 1 boot 1", f"vmfwupdate sel={lines[1].split()[1][4:]} size=32",
                         f"fields caps={CAPS} control=0x0 addr=0x0 size=0x0"]
    # no next image in fw_cfg: the request has size 0, so the reset is plain; RAM (the counter, the pattern) is kept
    assert "stage 1 boot 2" in lines and lines.count(f"pattern fnv={PATTERN_FNV}") == 2


def test_no_vmfwupdate_leaves_the_file_out():
    out = run(stage_igvm(1), {}, vmfwupdate=False)
    assert "vmfwupdate sel=0x0 size=0" in out.text and out.status == 3


def test_read_back_rules_and_reset_clears_disable():
    out = run(stage_igvm(1, CASE=4), {})
    got = {line.split()[0]: line.split(" ", 1)[1] for line in out.text.splitlines()
           if line.split()[0] in ("caps-written", "unknown-bits", "with-format", "format-cleared", "no-format",
                                  "all-32", "disabled", "clear-disable", "frozen")}

    def f(control: int, addr: int = 0, size: int = 0) -> str:
        return f"caps={CAPS} control={control:#x} addr={addr:#x} size={size:#x}"
    fmt = 1 << 32
    assert got == {"caps-written": f(0), "unknown-bits": f(fmt), "with-format": f(fmt, IMG_ADDR, 0x1000),
                   "format-cleared": f(0), "no-format": f(0), "all-32": f(fmt, IMG_ADDR, 0x1000),
                   "disabled": f(1), "clear-disable": f(1), "frozen": f(1)}
    lines = out.text.splitlines()
    assert "stage 1 boot 2" in lines and lines[lines.index("stage 1 boot 2") + 2] == "fields " + f(0)


@pytest.mark.parametrize("case", [0, 1])
def test_update_launches_the_new_firmware_and_keeps_ram(capfd, case):
    out = run(stage_igvm(1, CASE=case), {"opt/stage2": stage_igvm(2, MAX_BOOTS=1)}, no_reboot=True)
    lines = out.text.splitlines()
    assert out.status == (2 << 1) | 1, out.text            # an applied update is no plain reset: it continues
    if case == 1:                                           # two DMA writes: the address alone is kept, then both
        assert any(line.startswith("addr-only") and f"addr={IMG_ADDR:#x} size=0x0" in line for line in lines)
    req = next(line for line in lines if line.startswith("requested"))
    assert f"control=0x100000000 addr={IMG_ADDR:#x}" in req and "size=0x0" not in req
    i = lines.index("stage 2 boot 1")
    assert lines[i + 2] == f"fields caps={CAPS} control=0x0 addr=0x0 size=0x0"
    assert lines[i + 3] == f"pattern fnv={PATTERN_FNV}"
    assert any("launching the new firmware" in line for line in stderr_lines(capfd))


def test_chained_update_and_the_last_firmware_stays_for_plain_resets():
    files = {"opt/stage2": stage_igvm(2), "opt/stage3": stage_igvm(3, MAX_BOOTS=2)}
    out = run(stage_igvm(1), files, cpus=2)                 # the APs are rebuilt with every machine too
    lines = out.text.splitlines()
    assert out.status == (3 << 1) | 1, out.text
    boots = [line for line in lines if line.startswith("stage ")]
    # stage 3 scribbles over the buffer its image came from and resets with no request: the plain reset runs
    # stage 3 again from pyvmm's copy (it is the firmware now), RAM kept
    assert boots == ["stage 1 boot 1", "stage 2 boot 1", "stage 3 boot 1", "stage 3 boot 2"]
    assert lines.count(f"pattern fnv={PATTERN_FNV}") == 4


def _fadt_reset() -> tuple[int, int]:
    """The reset register the machine's FADT names (GAS at offset 116, RESET_VALUE at 128)."""
    import struct
    from vmm.fw_cfg import fw_cfg_items
    tables = bytes(fw_cfg_items(128 << 20, 1).file("etc/acpi/tables").data)
    at = tables.find(b"FACP")
    space, _, _, _, addr = struct.unpack_from("<BBBBQ", tables, at + 116)
    assert space == 1                                       # system I/O
    return addr, tables[at + 128]


@pytest.mark.parametrize("how", ["i8042", "fadt", "triple-fault"])
def test_every_reset_source_applies_the_update(how):
    defines = {"RESET_HOW": {"i8042": 1, "fadt": 2, "triple-fault": 3}[how]}
    if how == "fadt":
        defines["RESET_PORT"], defines["RESET_VALUE"] = _fadt_reset()
    out = run(stage_igvm(1, **defines), {"opt/stage2": stage_igvm(2, MAX_BOOTS=1)})
    assert out.status == (2 << 1) | 1 and "stage 2 boot 1" in out.text, out.text


def test_kvmclock_of_stage1_never_writes_into_stage2():
    kc = {"KVMCLOCK_ADDR": 0x3300000}
    out = run(stage_igvm(1, **kc), {"opt/stage2": stage_igvm(2, MAX_BOOTS=1, **kc)})
    lines = out.text.splitlines()
    assert out.status == (2 << 1) | 1, out.text
    version = next(line for line in lines if line.startswith("kvmclock version="))
    assert version != "kvmclock version=0x0"                 # stage 1 really had kvmclock running
    assert "kvmclock page changed bytes=0" in lines


def _snp_only() -> bytes:
    b = IgvmBuilder(version=2)
    mask = b.platform(Platform.SEV_SNP)
    b.pages(0x100000, stage_image(2), mask)
    return b.build()


REFUSED_AT_RESET = {
    "bad-magic": (lambda ok: b"XGVM" + ok[4:], "magic"),
    "truncated": (lambda ok: ok[:len(ok) // 2], "does not match the file's length"),
    "snp-only": (lambda ok: _snp_only(), "no platform pyvmm can launch"),
    "overlap": (lambda ok: stage_igvm(2, params=(ParamSpec(H.VP_COUNT_PARAMETER, IMG_ADDR),)), "overlaps the image"),
}


@pytest.mark.parametrize("name", sorted(REFUSED_AT_RESET))
def test_refused_update_is_one_line_then_a_plain_reset(capfd, name):
    make, why = REFUSED_AT_RESET[name]
    out = run(stage_igvm(1), {"opt/stage2": make(stage_igvm(2))})
    boots = [line for line in out.text.splitlines() if line.startswith("stage ")]
    assert boots == ["stage 1 boot 1", "stage 1 boot 2"] and out.status == (1 << 1) | 1, out.text
    refused = [line for line in stderr_lines(capfd) if "update refused" in line]
    assert len(refused) == 1 and why in refused[0] and "plain reset" in refused[0], refused


GiB = 1 << 30
REFUSED_AT_WRITE = {
    "outside-ram": ({"ADDR": 127 << 20, "SIZE": 2 << 20}, "128M", "not inside"),
    "mmio-hole": ({"ADDR": 3 * GiB + 0x1000, "SIZE": 0x1000}, "5G", "not inside"),
    "size-0": ({"SIZE": 0}, "128M", "size is 0"),
    "overflow": ({"ADDR": 2**64 - 0x1000, "SIZE": 0x2000}, "128M", "overflows"),
    "no-format": ({"CASE": 2}, "128M", "FORMAT_IGVM"),
    "disable": ({"CASE": 3}, "128M", None),
}


@pytest.mark.parametrize("name", sorted(REFUSED_AT_WRITE))
def test_request_refused_at_write_time_reads_zero_and_resets_plainly(capfd, name):
    defines, memory, why = REFUSED_AT_WRITE[name]
    out = run(stage_igvm(1, **defines), {"opt/stage2": stage_igvm(2)}, memory=memory)
    lines = out.text.splitlines()
    boots = [line for line in lines if line.startswith("stage ")]
    assert boots == ["stage 1 boot 1", "stage 1 boot 2"] and out.status == (1 << 1) | 1, out.text
    control = "0x1" if name == "disable" else ("0x0" if name == "no-format" else "0x100000000")
    assert f"requested caps={CAPS} control={control} addr=0x0 size=0x0" in lines
    logged = stderr_lines(capfd, "refused")
    if why is None:
        assert not logged
    else:
        assert len(logged) == 1 and why in logged[0], logged
    i = lines.index("stage 1 boot 2")                       # the reset cleared DISABLE and everything else
    assert lines[i + 2] == f"fields caps={CAPS} control=0x0 addr=0x0 size=0x0"


def test_cli_no_reboot_continues_into_an_update_and_ends_on_a_plain_reset(tmp_path):
    s1, s2, s3 = tmp_path / "s1.igvm", tmp_path / "s2.igvm", tmp_path / "s3.igvm"
    s1.write_bytes(stage_igvm(1))
    s2.write_bytes(stage_igvm(2))
    s3.write_bytes(stage_igvm(3, MAX_BOOTS=2))
    base = [sys.executable, "-m", "vmm", "--igvm", str(s1), "-m", "128M", "--timeout", "60",
            "--fw-cfg", f"name=opt/stage2,file={s2}", "--fw-cfg", f"name=opt/stage3,file={s3}"]
    p = subprocess.run(base + ["--no-reboot"], capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr                      # stage 3's first plain reset ends the run
    assert [x for x in p.stdout.splitlines() if x.startswith("stage ")] == ["stage 1 boot 1", "stage 2 boot 1",
                                                                            "stage 3 boot 1"]
    p = subprocess.run(base + ["--no-vmfwupdate", "--no-reboot"], capture_output=True, text=True, timeout=90)
    assert p.returncode == (1 << 1) | 1 and "vmfwupdate sel=0x0" in p.stdout, p.stderr


def test_example_builds_and_brings_its_own_firmware(tmp_path):
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    b = subprocess.run([sys.executable, str(root / "examples" / "vmfwupdate" / "build.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert b.returncode == 0 and "warning" not in b.stderr, b.stderr
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(tmp_path / "stage1.igvm"), "-m", "256M",
                        "--timeout", "60", "--fw-cfg", f"name=opt/org.example/firmware,file={tmp_path / 'stage2.igvm'}"],
                       capture_output=True, text=True, timeout=90, cwd=root)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "stage 2: the new firmware runs; note from stage 1: hello from stage 1"
    assert "launching the new firmware" in p.stderr

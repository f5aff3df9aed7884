"""`pyvmm --bios`: a ROM image mapped read-only to end at 4 GiB with its top 128 KiB aliased below 1 MiB, the boot
processor in the x86 reset state at 0xFFFFFFF0 (QEMU's -bios: hw/i386/x86-common.c). tests/guests/reset_rom.S
checks it from inside; bad ROM files are refused before /dev/kvm is opened."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vmm.firmware import ROM_UNIT, check_rom, ram_slots, window_for
from vmm.machine import Outcome

ROM_OK = (0x30 << 1) | 1


@pytest.fixture
def rom(toolchain_ok):
    from tests.guests.build import build
    image = build("reset_rom.S", load_addr=0, code16=True)
    assert len(image) == ROM_UNIT
    return image


@pytest.mark.parametrize("pad", [0, 1, 31])           # 64 KiB, 128 KiB (alias = all of it), 2 MiB (OVMF.fd's size)
def test_rom_starts_at_the_reset_vector_read_only_with_its_alias(kvm_ok, rom, pad):
    from tests.guests.run import run_rom
    lines, dbg = [], bytearray()
    r = run_rom(b"\xff" * ROM_UNIT * pad + rom, trace=frozenset({"exits"}), log=lines.append, debugcon=dbg.extend)
    assert r.status == ROM_OK, (r.result, r.text, lines)
    assert r.text == "rom ok\n" and bytes(dbg) == b"dbg"
    rom_writes = [line for line in lines if "firmware ROM" in line]
    assert len(rom_writes) == 1, lines                  # four writes, told once


def test_cli_bios_runs_the_rom(kvm_ok, rom, tmp_path):
    path = tmp_path / "rom.bin"
    path.write_bytes(rom)
    p = subprocess.run([sys.executable, "-m", "vmm", "--bios", str(path), "-m", "64M", "--debugcon",
                        str(tmp_path / "dbg.txt"), "--timeout", "30"], capture_output=True, text=True)
    assert p.returncode == ROM_OK, p.stderr
    assert p.stdout == "rom ok\n" and (tmp_path / "dbg.txt").read_bytes() == b"dbg"


@pytest.mark.parametrize("size,words", [(0, "is empty"), (ROM_UNIT + 512, "not a multiple of 64 KiB"),
                                        (17 << 20, "at most")])
def test_bad_rom_files_are_one_line_and_status_2_before_kvm(tmp_path, size, words):
    path = tmp_path / "bad.fd"
    path.write_bytes(b"\x90" * size)
    env = dict(os.environ, PYVMM_KVM_DEVICE=str(tmp_path / "no-kvm"))    # a ROM check must come first
    p = subprocess.run([sys.executable, "-m", "vmm", "--bios", str(path)], capture_output=True, text=True, env=env)
    assert p.returncode == 2
    assert p.stderr.startswith(f"pyvmm: error: {path}: ") and words in p.stderr and p.stderr.count("\n") == 1
    with pytest.raises(ValueError, match=words):
        check_rom(b"\x90" * size, "x")


def test_bios_and_igvm_are_exclusive(tmp_path):
    p = subprocess.run([sys.executable, "-m", "vmm", "--bios", "a", "--igvm", "b"], capture_output=True, text=True)
    assert p.returncode == 2 and "exclusive" in p.stderr


def test_window_and_slots_arithmetic():
    assert window_for([(0xFFE00000, 1 << 32)]) == 2 << 20
    assert window_for([(0xFFE01000, 0xFFE02000), (0x100000, 0x200000)]) == 2 << 20        # rounded down to 64 KiB
    assert window_for([(0x100000, 0x200000)]) == 0
    assert window_for([(0xFEFFF000, 1 << 32)]) == 0                  # below the top 16 MiB: not firmware
    pieces = ram_slots([(0, 64 << 20, 0x7000_0000)], (0xE0000, 0x20000))
    assert pieces == [(0, 0xE0000, 0x7000_0000), (0x100000, (64 << 20) - 0x100000, 0x7010_0000)]


def test_build_rom_layout_checked_by_igvm_dump(rom, tmp_path):
    import json
    image = b"\xff" * ROM_UNIT + rom                                  # 128 KiB: two 64 KiB units
    (tmp_path / "rom.bin").write_bytes(image)
    out = tmp_path / "rom.igvm"
    p = subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-rom", "--rom", str(tmp_path / "rom.bin"),
                        "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-m", "vmm", "igvm", "dump", "--json", str(out)], capture_output=True, text=True)
    info = json.loads(p.stdout)
    assert info["file"]["version"] == 2
    assert [(x["platform_type"], x["compatibility_mask"]) for x in info["platforms"]] == [("NATIVE", 1)]
    assert info["totals"]["vp_contexts"] == 0 and info["totals"]["page_data"] == len(image) // 4096
    runs = info["page_ranges"]
    assert (runs[0]["first_gpa"], runs[-1]["end_gpa"]) == ((1 << 32) - len(image), 1 << 32)
    assert all(r["data_type"] == "NORMAL" and r["flags"] == 0 for r in runs)
    assert sum(r["pages"] for r in runs) == len(image) // 4096
    from loaders.igvm import read_igvm
    pages = {d.gpa: d.data for d in read_igvm(out.read_bytes()).directives}
    rebuilt = b"".join(pages[g] or bytes(4096) for g in sorted(pages))
    assert rebuilt == image                                           # the ROM's bytes, in place


def test_build_rom_igvm_boots_at_the_reset_vector(kvm_ok, rom, tmp_path):
    out = tmp_path / "rom.igvm"
    (tmp_path / "rom.bin").write_bytes(rom)
    subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-rom", "--rom", str(tmp_path / "rom.bin"), "-o",
                    str(out)], check=True, capture_output=True)
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(out), "-m", "64M", "--debugcon",
                        str(tmp_path / "dbg"), "--timeout", "30"], capture_output=True, text=True)
    assert p.returncode == ROM_OK, p.stderr                          # read-only window and alias, as with --bios
    assert p.stdout == "rom ok\n"
    plan = subprocess.run([sys.executable, "-m", "vmm", "igvm", "plan", str(out), "-m", "64M"], capture_output=True,
                          text=True)
    assert "reset state at 0xfffffff0" in plan.stdout


def test_build_rom_refuses_a_bad_rom(tmp_path):
    (tmp_path / "bad.fd").write_bytes(b"\0" * 1000)
    p = subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-rom", "--rom", str(tmp_path / "bad.fd"), "-o",
                        str(tmp_path / "x.igvm")], capture_output=True, text=True)
    assert p.returncode == 2 and "not a multiple of 64 KiB" in p.stderr and p.stderr.count("\n") == 1
    assert not (tmp_path / "x.igvm").exists()


@pytest.mark.parametrize("how", ["bios", "igvm"])
def test_rom_runs_again_after_a_reset_through_0xcf9(kvm_ok, toolchain_ok, tmp_path, how):
    """A guest reset relaunches the machine: the ROM is back, read-only, at the reset vector (an IGVM's zero
    pages in the window included), and RAM is kept."""
    from tests.guests.build import build
    image = b"\0" * ROM_UNIT + build("reset_rom.S", load_addr=0, code16=True, defines={"RESET_FIRST": 1})
    (tmp_path / "rom.bin").write_bytes(image)
    args = ["--bios", str(tmp_path / "rom.bin")]
    if how == "igvm":
        subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-rom", "--rom", str(tmp_path / "rom.bin"), "-o",
                        str(tmp_path / "rom.igvm")], check=True, capture_output=True)
        args = ["--igvm", str(tmp_path / "rom.igvm")]
    p = subprocess.run([sys.executable, "-m", "vmm", *args, "-m", "64M", "--debugcon", str(tmp_path / "dbg"),
                        "--timeout", "30"], capture_output=True, text=True)
    assert p.returncode == ROM_OK, p.stderr
    assert "relaunching" in p.stderr and p.stdout == "rom ok\n"

"""Opt-in (pytest -m slow): Debian's kernel booted with type=linux says, on its own console, that it received what
pyvmm gave it: the command line, an e820 map whose usable RAM ends at -m, pyvmm's ACPI tables, the CPUs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kvm_ok")]


def test_debian_kernel_sees_the_machine(tmp_path):
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get to fetch the kernel package")
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples"))
    from boot_debian_kernel import KERNEL_WORDS, build_igvm, download_kernel_package
    try:
        deb = download_kernel_package(str(tmp_path))
    except (subprocess.CalledProcessError, RuntimeError) as e:     # no network or apt lists: nothing of pyvmm's ran
        pytest.skip(f"cannot fetch Debian's kernel here: {e}")
    igvm = build_igvm(str(tmp_path), deb=deb)                      # unpacking and build-linux must work: no skip
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", f"type=linux,path={igvm}", "-m", "1G", "-p", "2",
                        "--no-reboot", "--timeout", "400"], capture_output=True, text=True, timeout=600)
    out = p.stdout
    assert "Linux version 6." in out, (p.returncode, p.stderr[-2000:])
    assert f"Command line: {KERNEL_WORDS}" in out
    usable = re.findall(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] usable", out)
    assert usable and int(usable[-1][1], 16) == (1 << 30) - 1
    assert "ACPI: RSDP 0x0000000000014000" in out and "PYVMM" in out
    assert re.search(r"ACPI: APIC 0x000000000000F000", out) and "ACPI: SRAT" in out
    assert "smpboot: Allowing 2 CPUs" in out
    assert "Unable to load the System Description Tables" not in out        # where it gets as far as ACPI's init

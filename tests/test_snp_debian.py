"""Opt-in (pytest -m slow): Debian's kernel, packaged for SEV-SNP by microsoft/igvm-tooling's `igvmgen -boot_mode
x64`, launched by pyvmm as an ordinary guest (`--igvm-platform sev_snp`) prints its banner and the command line the
IGVM file carries.

The file is another tool's: igvmgen's 64-bit start state (VMSA), its page tables (C-bit set, 1 GiB pages), its
boot_params and e820 map, its CPUID and secrets pages. Needs igvmgen (set PYVMM_IGVMGEN to its path, or have it on
PATH: `pip install ./src` in a checkout of microsoft/igvm-tooling, with Debian's acpica-tools) and apt-get to fetch
the kernel package; the test skips without them, before pyvmm runs. The kernel decompresses itself (xz) before
`Linux version`: seconds on hardware KVM, over an hour where KVM emulates ring-0 code (PYVMM_SNP_DEBIAN_TIMEOUT,
seconds, default 7200). Measured on the development machine (nested kvm_pvm, 2 cores, load average 1-5) with
Debian 6.1.0-57: `Linux version` and the command line at about 4,540 s, nearly all of it the xz decompressor
(63 MiB of vmlinux at 0.5-1 MiB a minute).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kvm_ok")]
CMDLINE = "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr pyvmm=snp-x64"


def test_debian_kernel_packaged_by_igvmgen_prints_its_banner_and_command_line(tmp_path):
    igvmgen = os.environ.get("PYVMM_IGVMGEN") or shutil.which("igvmgen")
    if not igvmgen:
        pytest.skip("needs microsoft/igvm-tooling's igvmgen (PYVMM_IGVMGEN or PATH)")
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get to fetch the kernel package")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from boot_debian_kernel import bzimage_from_package, download_kernel_package
    try:
        deb = download_kernel_package(str(tmp_path))
    except (subprocess.CalledProcessError, RuntimeError) as e:     # no network or apt lists: nothing of pyvmm's ran
        pytest.skip(f"cannot fetch Debian's kernel here: {e}")
    bzimage = bzimage_from_package(deb, str(tmp_path))
    igvm = tmp_path / "debian-snp.igvm"
    subprocess.run([igvmgen, "-o", str(igvm), "-kernel", bzimage, "-inform", "bzImage", "-append", CMDLINE,
                    "-boot_mode", "x64", "-vtl", "0"], check=True, capture_output=True, cwd=tmp_path)
    limit = int(os.environ.get("PYVMM_SNP_DEBIAN_TIMEOUT", "7200"))
    p = subprocess.Popen([sys.executable, "-m", "vmm", "--igvm", str(igvm), "--igvm-platform", "sev_snp", "-m", "1G",
                          "--no-reboot", "--timeout", str(limit)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    try:
        for line in p.stdout:                   # until the command line is printed, the guest stops or pyvmm's timeout
            out += line
            if b"Command line: " in line:
                break
    finally:
        p.kill()
        err = p.communicate(timeout=60)[1].decode(errors="replace")
    text = out.decode(errors="replace")
    assert err.count("WITHOUT confidentiality") == 1
    assert "Linux version 6." in text, (p.returncode, text[-2000:], err[-2000:])
    assert f"Command line: {CMDLINE}" in text

"""Debian's OVMF (`apt-get install ovmf`: /usr/share/ovmf/OVMF.fd, or PYVMM_OVMF=FILE) on pyvmm's PC, from --bios
and from `igvm build-rom`'s file: the milestones it reaches (--trace milestones), and on a host with hardware KVM
the UEFI shell, where typing `reset -s` powers the machine off (status 0), as under QEMU `-M pc -bios OVMF.fd`.

Where KVM itself emulates the guest (no vmx/svm on the host), OVMF's SEC stops at instructions KVM cannot emulate
(x87/SSE control, LZMA decompression in the emulator): the test then records how far it got and requires a clean
end (a fatal dump naming the instruction, or the timeout), never a VMM error. PYVMM_OVMF_TIMEOUT (seconds,
default 180) bounds each run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vmm.milestones import FIRST_SERIAL, FW_CFG_SIGNATURE, HOST_BRIDGE, NAMES, RESET_VECTOR, SHELL

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kvm_ok")]

OVMF = Path(os.environ.get("PYVMM_OVMF", "/usr/share/ovmf/OVMF.fd"))
TIMEOUT = float(os.environ.get("PYVMM_OVMF_TIMEOUT", "180"))
MILESTONE = re.compile(r"pyvmm: milestone: (.+) at ([\d.]+) s")


def hardware_kvm() -> bool:
    """True when the CPU virtualizes (vmx/svm): OVMF then runs natively and must reach the shell."""
    flags = Path("/proc/cpuinfo").read_text()
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M))


def boot(args: list[str]) -> tuple[int, str, dict[str, float], str]:
    """Run pyvmm with --trace milestones, type `reset -s` once the shell prompt is seen; (status, COM1 text,
    milestones, stderr)."""
    p = subprocess.Popen([sys.executable, "-m", "vmm", *args, "-m", "256M", "--trace", "milestones",
                          "--timeout", str(TIMEOUT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    err: list[str] = []
    reached: dict[str, float] = {}

    def watch() -> None:
        for raw in p.stderr:
            line = raw.decode(errors="replace")
            err.append(line)
            m = MILESTONE.match(line)
            if m:
                reached[m[1]] = float(m[2])
                if m[1] == SHELL:
                    p.stdin.write(b"reset -s\r")
                    p.stdin.flush()
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    out = p.stdout.read()
    p.wait(TIMEOUT + 60)
    t.join(10)
    return p.returncode, out.decode(errors="replace"), reached, "".join(err)


@pytest.fixture(scope="module")
def ovmf() -> Path:
    if not OVMF.is_file():
        pytest.skip(f"{OVMF} is not installed (apt-get install ovmf)")
    return OVMF


@pytest.mark.parametrize("how", ["bios", "igvm"])
def test_ovmf_milestones(ovmf, tmp_path, how, record_property):
    if how == "bios":
        args = ["--bios", str(ovmf)]
    else:
        igvm = tmp_path / "ovmf.igvm"
        subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-rom", "--rom", str(ovmf), "-o", str(igvm)],
                       check=True, capture_output=True)
        args = ["--igvm", str(igvm)]
    status, serial, reached, stderr = boot(args)
    summary = ", ".join(f"{name} {t:.3f} s" for name, t in sorted(reached.items(), key=lambda kv: kv[1]))
    record_property("milestones", summary)
    print(f"\nOVMF ({how}): status {status}; milestones: {summary or 'none'}")
    assert "VMM error" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert {RESET_VECTOR, HOST_BRIDGE} <= set(reached), stderr[-3000:]   # SEC's first C code ran on our i440FX
    order = [n for n in NAMES if n in reached]
    assert [reached[n] for n in order] == sorted(reached[n] for n in order)
    if hardware_kvm():
        assert {FW_CFG_SIGNATURE, FIRST_SERIAL, SHELL} <= set(reached), stderr[-3000:]
        assert "Shell> " in re.sub(r"\x1b\[[0-9;=?]*[A-Za-z]|\r", "", serial)
        assert status == 0, stderr[-3000:]                            # `reset -s`: ACPI S5 at 0xB004
    else:
        assert status in (3, 124), stderr[-3000:]                     # a named emulation failure, or the timeout
        if status == 3:
            assert "emulation failure" in stderr

"""A loader regression test as a pyvmm user writes it: build an IGVM, launch it, assert on what the guest saw.

Run it with `python -m pytest examples/`. It needs gcc/binutils and a usable /dev/kvm. Copy it and replace
the guest with yours (or read an IGVM file your own tool produced and skip the build step).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from kvm import kvm_usable
from loaders.igvm import HeaderType, Platform
from loaders.igvm.pack import ParamSpec, pack_flat_image
from vmm.api import run_igvm

# A 64-bit guest: print "vps=<n>" from the VP_COUNT parameter area at 0x20000, then exit(0x10) via port 0xf4.
GUEST = r"""
    .code64
    .globl _start
_start:
    lea msg(%rip), %rsi
    call puts
    mov 0x20000, %eax          /* VP count written by the VMM */
    add $'0', %al
    call putc
    mov $'\n', %al
    call putc
    mov $0x10, %al
    out %al, $0xf4
1:  hlt
    jmp 1b
puts: lodsb
    test %al, %al
    jz 2f
    call putc
    jmp puts
2:  ret
putc: mov %al, %bl
    mov $0x3fd, %dx
3:  in %dx, %al
    test $0x20, %al
    jz 3b
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    ret
msg: .asciz "vps="
"""


def _need(what: str) -> None:
    if os.environ.get("PYVMM_REQUIRE_KVM") == "1":
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture
def guest_igvm(tmp_path):
    if shutil.which("gcc") is None or shutil.which("objcopy") is None:
        _need("gcc and objcopy are needed to build the example guest")
    if kvm_usable() is not None:
        _need(f"/dev/kvm: {kvm_usable()}")
    (tmp_path / "g.S").write_text(GUEST)
    subprocess.run(["gcc", "-nostdlib", "-static", "-Wl,-Ttext=0x100000", "-Wl,--no-warn-rwx-segments",
                    "-o", "g.elf", "g.S"], cwd=tmp_path, check=True)
    subprocess.run(["objcopy", "-O", "binary", "g.elf", "g.bin"], cwd=tmp_path, check=True)
    image = (tmp_path / "g.bin").read_bytes()
    path = tmp_path / "guest.igvm"
    path.write_bytes(pack_flat_image(image, platform=Platform.NATIVE,
                                     params=(ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x20000),)))
    return path


@pytest.mark.parametrize("cpus", [1, 3])
def test_guest_sees_the_vp_count(guest_igvm, cpus):
    out = run_igvm(guest_igvm, memory="128M", cpus=cpus, timeout=20)
    assert out.status == (0x10 << 1) | 1          # the guest's debug-exit value, as the pyvmm command returns it
    assert out.text == f"vps={cpus}\n"


def test_the_load_plan_is_what_we_expect(guest_igvm):
    plan = subprocess.run([sys.executable, "-m", "vmm", "igvm", "plan", str(guest_igvm), "-p", "2"],
                          capture_output=True, text=True, check=True).stdout
    assert "param 0x0000020000-0x0000021000 0x1000" in plan
    assert "parameter 0 VP_COUNT_PARAMETER@0x0: 2 VPs" in plan
    assert "  rip = 0x100000" in plan


def test_the_readmes_first_command_runs_the_bundled_uefi_example():
    """README: `pyvmm --igvm type=uefi,path=examples/hello-uefi.igvm -m 256M --no-reboot`."""
    if kvm_usable() is not None:
        _need(f"/dev/kvm: {kvm_usable()}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", "type=uefi,path=examples/hello-uefi.igvm", "-m",
                        "256M", "--no-reboot"], cwd=root, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("uefi probe: r12=0x709000\nblob count=12 ")
    assert "memory 0x0-0x10000000 flags=0\n" in p.stdout and p.stdout.endswith("structures=ok\n")

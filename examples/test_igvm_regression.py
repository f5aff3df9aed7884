"""A loader regression test as a pyvmm user writes it, on pyvmm's pytest plugin (installed with pyvmm).

Run it with `python -m pytest examples/` (add `-n auto` with pytest-xdist). Copy it and put your own IGVM files
in: `pyvmm_run` launches one and, when a test fails, shows the guest's serial output (and the register dump of
a crash) in the report; `igvm_snapshot` compares a file's load plan with `__igvm_snapshots__/NAME.plan` beside
this file (`pytest --igvm-snapshot-update` writes it the first time and after an intended change). Guests to
test with: vmm/testing.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmm.testing import HeaderType, ParamSpec, ToolchainMissing, assemble, flat_guest

HERE = Path(__file__).resolve().parent

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


@pytest.fixture(scope="module")
def vp_count_guest() -> bytes:
    """The guest above as an IGVM file (bytes) with a VP_COUNT parameter area at 0x20000."""
    try:
        image = assemble(GUEST)
    except ToolchainMissing as e:
        pytest.skip(str(e))
    return flat_guest(image, params=(ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x20000),))


@pytest.mark.parametrize("cpus", [1, 3])
def test_guest_sees_the_vp_count(pyvmm_run, vp_count_guest, cpus):
    out = pyvmm_run(vp_count_guest, memory="128M", cpus=cpus, timeout=20)
    assert out.status == (0x10 << 1) | 1          # the guest's debug-exit value, as the pyvmm command returns it
    assert out.text == f"vps={cpus}\n"


def test_the_bundled_uefi_example_loads_as_before(igvm_snapshot):
    """Every range, register, parameter and UEFI config blob entry of a type=uefi launch with 256 MiB."""
    igvm_snapshot("hello-uefi", HERE / "hello-uefi.igvm", igvm_type="uefi", memory="256M")


@pytest.mark.kvm
def test_the_readmes_first_command_runs_the_bundled_uefi_example():
    """README: `pyvmm --igvm type=uefi,path=examples/hello-uefi.igvm -m 256M --no-reboot`."""
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", "type=uefi,path=examples/hello-uefi.igvm", "-m",
                        "256M", "--no-reboot"], cwd=HERE.parent, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("uefi probe: r12=0x709000\nblob count=12 ")
    assert "memory 0x0-0x10000000 flags=0\n" in p.stdout and p.stdout.endswith("structures=ok\n")

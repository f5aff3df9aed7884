"""Opt-in (pytest -m slow): a tiny Linux kernel built here from Debian's linux-source-6.1 boots under pyvmm with a
busybox initramfs written by loaders.linux.cpio, to the hand-over to /init (userspace where the KVM can run it).

Building the kernel takes about 4 minutes on 2 cores (cached afterwards); each boot about a minute on the
development machines' emulating KVM.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kvm_ok")]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import tiny_linux  # noqa: E402


@pytest.fixture(scope="module")
def images():
    if tiny_linux.missing_tools():
        if os.geteuid() != 0:
            pytest.skip(tiny_linux.missing_tools())
        tiny_linux.install_build_packages()
    bz, elf = tiny_linux.build_kernel(log=lambda s: None)
    return bz, elf, tiny_linux.write_initramfs()


def _boot(kernel: Path, initrd: Path, memory: str, cpus: int) -> tuple[dict, str]:
    r = tiny_linux.timed_boot(tiny_linux.pyvmm_command(kernel, initrd, memory, cpus), timeout=500, after_marker=30)
    return r, r["console"]


@pytest.mark.parametrize("kind, memory, cpus", [("bzImage", "256M", 1), ("vmlinux", "512M", 2)])
def test_tiny_kernel_reaches_init(images, kind, memory, cpus):
    bz, elf, initrd = images
    r, out = _boot(bz if kind == "bzImage" else elf, initrd, memory, cpus)
    assert "Linux version 6.1" in out, out[-3000:]
    assert f"Command line: {tiny_linux.CMDLINE}" in out
    usable = re.findall(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] usable", out)
    assert int(usable[-1][1], 16) == (int(memory[:-1]) << 20) - 1
    assert "found SMP MP-table at [mem 0x0009fc00-0x0009fc0f]" in out       # no seconds-long scan for one
    assert "ACPI: RSDP 0x0000000000014000" in out and "ACPI: Using ACPI (MADT)" in out
    # ACPICA loaded pyvmm's DSDT and enabled the interpreter (the PCI_Config handler needs CONFIG_PCI).
    assert "Unable to load the System Description Tables" not in out and "ACPI Error" not in out, out[-3000:]
    assert "ACPI: Interpreter enabled" in out, out[-3000:]
    assert "Unpacking initramfs..." in out and re.search(r"Freeing initrd memory: \d+K", out)
    # The hand-over itself: the kernel ran /init. Only what follows it counts as /init's doing.
    assert tiny_linux.RUN_INIT in out, out[-3000:]
    after = out[out.index(tiny_linux.RUN_INIT):]
    if "PYVMM-BOOT-OK" in after:
        # A KVM that runs guest user mode: /init printed its line and powered off (ACPI S5), status 0.
        assert "Attempted to kill init" not in after, after[-2000:]
    else:
        # An emulating KVM (user mode cannot run): init dies, the kernel panics, panic=-1 reboot=k resets through
        # the i8042 and --no-reboot ends the run with status 0.
        assert "Kernel panic - not syncing: Attempted to kill init" in after, after[-3000:]
    assert r["exit"] is not None and r["status"] == 0, (r["status"], out[-2000:])


def test_initramfs_is_deterministic_and_has_a_console_node():
    a, b = tiny_linux.initramfs(), tiny_linux.initramfs()
    assert a == b
    from loaders.linux import cpio
    names = {e.name: e for e in cpio.read(a)}
    assert names["dev/console"].rdev == (5, 1) and names["init"].data.startswith(b"#!/bin/sh")


def test_as_shipped_kernel_passes_the_int3_self_test_through_the_emulator():
    """The same kernel without its two source edits: alternative_instructions() runs its int3 self-test (a BUG if
    the breakpoint is not delivered as the CPU would, with the return address after the int3). Where KVM gives
    up on the int3 (kvm_pvm; QEMU stops there with a KVM internal error), pyvmm's emulator delivers it and the
    kernel goes on to the next init step (pid_max). Stopped by --timeout so the trace reports what was emulated."""
    if tiny_linux.missing_tools():
        pytest.skip(tiny_linux.missing_tools())
    bz, _ = tiny_linux.build_kernel(log=lambda s: None, edits=[])
    initrd = tiny_linux.write_initramfs()
    p = subprocess.run([*tiny_linux.pyvmm_command(bz, initrd), "--trace", "exits", "--timeout", "400"],
                       capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    out = p.stdout + p.stderr
    assert p.returncode in (0, 124), out[-3000:]
    assert "int3_selftest" not in out and "kernel BUG" not in out, out[-3000:]
    fpu = out.index("x86/fpu: ")                  # printed just before alternative_instructions()
    assert "pid_max: default" in out[fpu:], out[-3000:]
    trace = next((line for line in out.splitlines() if "emulated instructions" in line), "")
    if trace:               # this KVM gave up on some instructions: the self-test's int3 is among them
        assert "int3" in trace, trace

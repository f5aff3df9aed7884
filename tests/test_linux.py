"""Linux direct boot: kernel parsing, build-linux, `--igvm type=linux` and `--kernel` with a probe kernel that
checks what Linux relies on (RSI, e820 against -m, command line, initrd, RSDP -> XSDT -> MADT), power-off."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from loaders.errors import LoadError
from loaders.linux.igvm import build_linux_igvm
from loaders.linux.kernel import parse_kernel
from loaders.linux.typed import e820_map
from vmm.memory import ram_layout
from tests.guests.run import fnv1a as fnv
from tests.linux_images import BZIMAGE_ENTRY, make_bzimage, probe_bzimage, probe_vmlinux

pytestmark = pytest.mark.usefixtures("toolchain_ok")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmm", *args], capture_output=True, text=True, timeout=60)


def test_bzimage_header_is_read():
    k = parse_kernel(probe_bzimage())
    assert k.kind == "bzImage" and k.entry == BZIMAGE_ENTRY and k.protocol == 0x020F
    assert k.segments[0].gpa == 0x100000 and k.cmdline_size == 2047 and k.init_size == 1 << 20


@pytest.mark.parametrize("kw,words", [
    (dict(xloadflags=0), "32-bit-only kernel"),
    (dict(version=0x0206), "too old"),
])
def test_kernels_pyvmm_cannot_boot(kw, words):
    with pytest.raises(LoadError, match=words):
        parse_kernel(make_bzimage(b"\xf4", **kw))


def test_truncated_and_foreign_images():
    bz = probe_bzimage()
    with pytest.raises(LoadError, match="truncated"):
        parse_kernel(bz[:0x300])
    with pytest.raises(LoadError, match="not a Linux kernel"):
        parse_kernel(b"MZ" + bytes(1000))
    elf = bytearray(probe_vmlinux())
    elf[4] = 1                                   # ELFCLASS32
    with pytest.raises(LoadError, match="not 64-bit"):
        parse_kernel(bytes(elf))


def test_initrd_above_the_kernels_limit_is_refused():
    with pytest.raises(LoadError, match="initrd_addr_max"):
        build_linux_igvm(probe_bzimage(initrd_addr_max=0x1300000), initrd=bytes(2 << 20))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_kernels_parse_or_refuse(data):
    raw = bytearray(probe_vmlinux() if data.draw(st.booleans()) else probe_bzimage())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, min(len(raw) - 1, 0x500)))] = data.draw(st.integers(0, 255))
    try:
        parse_kernel(bytes(raw[:data.draw(st.integers(0, len(raw)))]))
    except LoadError:
        pass


@given(st.integers(2, 1 << 14).map(lambda mib: mib << 20))
def test_e820_covers_ram_exactly_and_reserves_boot_data(memory):
    ram = ram_layout(memory)
    table = e820_map(ram, [(0x1000, 0x16000), (0x9FC00, 0x100000)])
    assert sum(s for _, s, _ in table) == memory
    usable_end = max(a + s for a, s, t in table if t == 1)
    assert usable_end == max(g + s for g, s in ram)
    assert all(a1 + s1 <= a2 for (a1, s1, _), (a2, _, _) in zip(table, table[1:]))
    assert (0x1000, 0x15000, 2) in table


@pytest.mark.usefixtures("kvm_ok")
@pytest.mark.parametrize("kind", ["vmlinux", "bzImage"])
@pytest.mark.parametrize("cpus,memory", [(1, "256M"), (4, "5G")])
def test_probe_kernel_gets_what_linux_needs(tmp_path, kind, cpus, memory):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(probe_vmlinux() if kind == "vmlinux" else probe_bzimage())
    initrd = tmp_path / "initrd"
    initrd.write_bytes(os.urandom(12345))
    igvm = tmp_path / "linux.igvm"
    p = _run("igvm", "build-linux", "--kernel", str(kernel), "--initrd", str(initrd), "--cmdline", "default words",
             "-o", str(igvm))
    assert p.returncode == 0, p.stderr
    p = _run("--igvm", f"type=linux,path={igvm}", "-m", memory, "-p", str(cpus), "--cmdline", "console=ttyS0 quiet")
    assert p.returncode == 0, (p.stdout, p.stderr)          # the probe powered off through ACPI S5
    lines = p.stdout.splitlines()
    assert lines[0] == "linux probe: rsi=0x1000 header=ok loader=0xff"
    e820 = [x.split() for x in lines if x.startswith("e820 ")]
    ranges = {t: [tuple(int(v, 16) for v in r.split("-")) for _, r, tt in e820 if tt == t]
              for t in ("type=1", "type=2")}
    mem = int(memory[:-1]) << (20 if memory.endswith("M") else 30)
    assert sum(b - a for t in ranges.values() for a, b in t) == mem          # RAM described exactly once
    assert max(b for _, b in ranges["type=1"]) == max(g + s for g, s in ram_layout(mem))   # usable ends at -m
    reserved = ranges["type=2"]
    for boot in (0x1000, 0x2000, 0x3000, 0xA000, 0xF000, 0x10000, 0x14000, 0x15000, 0x9FC00):  # zero page..ACPI
        assert any(a <= boot < b for a, b in reserved), hex(boot)
    assert "cmdline=[console=ttyS0 quiet]" in lines
    initrd_line = next(x for x in lines if x.startswith("initrd "))
    assert initrd_line.endswith(f"size=12345 fnv={fnv(initrd.read_bytes()):#x}")
    assert "rsdp 0x14000 checksum=ok" in lines and "xsdt ok" in lines
    assert "table FACP checksum=ok dsdt=ok s5=0" in lines        # the DSDT's _S5 sleep type: QEMU's 0
    assert f"table APIC checksum=ok cpus={cpus}" in lines
    assert {"table SRAT checksum=ok", "table SLIT checksum=ok", "table PPTT checksum=ok"} <= set(lines)


@pytest.mark.usefixtures("kvm_ok")
def test_default_command_line_and_plain_kernel_path(tmp_path):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(probe_vmlinux())
    igvm = tmp_path / "l.igvm"
    assert _run("igvm", "build-linux", "--kernel", str(kernel), "--cmdline", "from the file", "-o",
                str(igvm)).returncode == 0
    p = _run("--igvm", f"type=linux,path={igvm}", "-m", "128M")
    assert p.returncode == 0 and "cmdline=[from the file]" in p.stdout.splitlines()
    p = _run("--kernel", str(kernel), "--cmdline", "direct", "-m", "128M", "-p", "2")
    assert p.returncode == 0 and "cmdline=[direct]" in p.stdout and "table APIC checksum=ok cpus=2" in p.stdout


@pytest.mark.parametrize("args,words", [
    (["--kernel", "/nonexistent"], "cannot read /nonexistent"),
    (["--initrd", "x", "--igvm", "y"], "--initrd goes with --kernel"),
])
def test_bad_linux_options(args, words, kvm_ok):
    p = _run(*args)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, p.stderr


def test_bad_kernel_file_is_one_line(tmp_path, kvm_ok):
    bad = tmp_path / "k"
    bad.write_bytes(make_bzimage(b"\xf4", xloadflags=0))
    p = _run("--kernel", str(bad))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "32-bit-only" in p.stderr
    p = _run("igvm", "build-linux", "--kernel", str(bad), "-o", str(tmp_path / "o"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "32-bit-only" in p.stderr


@pytest.mark.usefixtures("kvm_ok", "toolchain_ok")
def test_the_benchmark_guest_elf_boots_with_kernel(tmp_path):
    """tests/guests/pvh_bench.S, the ELF both VMMs boot in tests/bench/bench_vs_qemu.py: --kernel enters it at its
    64-bit ELF entry, its PVH note is the one QEMU uses, and every workload ends with the debug exit (status 1)."""
    from tests.guests.build import build
    elf = lambda **d: build("pvh_bench.S", elf=True, ld_flags=("-n",), defines=d)  # noqa: E731
    hello = elf(WORK=0)
    k = parse_kernel(hello)
    assert k.pvh_entry is not None and k.pvh_entry < k.entry and k.segments[0].gpa == 0x100000
    for name, image, out in (("hello", hello, "Hello from the benchmark guest\n"),
                             ("outs", elf(WORK=1, COUNT=1000, PORT=0x3F8), "." * 1000),
                             ("ins", elf(WORK=2, COUNT=100, PORT=0x3000), "")):
        path = tmp_path / name
        path.write_bytes(image)
        p = _run("--kernel", str(path), "-m", "64M")
        assert (p.returncode, p.stdout) == (1, out), (name, p.returncode, p.stderr[-500:])


def test_boot_params_declaration_matches_the_linux_documents():
    """Offsets typed from Documentation/arch/x86/boot.rst ("The real-mode kernel header") and zero-page.rst."""
    from loaders.linux.bootparams import BootParams, E820Entry, SetupHeader
    boot_rst = {"setup_sects": 0x1F1, "root_flags": 0x1F2, "syssize": 0x1F4, "ram_size": 0x1F8, "vid_mode": 0x1FA,
                "root_dev": 0x1FC, "boot_flag": 0x1FE, "jump": 0x200, "header": 0x202, "version": 0x206,
                "realmode_swtch": 0x208, "start_sys_seg": 0x20C, "kernel_version": 0x20E, "type_of_loader": 0x210,
                "loadflags": 0x211, "setup_move_size": 0x212, "code32_start": 0x214, "ramdisk_image": 0x218,
                "ramdisk_size": 0x21C, "bootsect_kludge": 0x220, "heap_end_ptr": 0x224, "ext_loader_ver": 0x226,
                "ext_loader_type": 0x227, "cmd_line_ptr": 0x228, "initrd_addr_max": 0x22C,
                "kernel_alignment": 0x230, "relocatable_kernel": 0x234, "min_alignment": 0x235, "xloadflags": 0x236,
                "cmdline_size": 0x238, "hardware_subarch": 0x23C, "hardware_subarch_data": 0x240,
                "payload_offset": 0x248, "payload_length": 0x24C, "setup_data": 0x250, "pref_address": 0x258,
                "init_size": 0x260, "handover_offset": 0x264, "kernel_info_offset": 0x268}
    hdr = BootParams.hdr.offset
    assert hdr == 0x1F1
    assert {name: hdr + getattr(SetupHeader, name).offset for name in boot_rst} == boot_rst
    assert ctypes_size(SetupHeader) == 0x26C - 0x1F1
    assert (BootParams.acpi_rsdp_addr.offset, BootParams.e820_entries.offset, BootParams.e820_table.offset) == \
        (0x070, 0x1E8, 0x2D0)
    assert ctypes_size(E820Entry) == 20 and ctypes_size(BootParams) == 4096
    assert BootParams.e820_table.size == 20 * 128


def ctypes_size(t) -> int:
    import ctypes
    return ctypes.sizeof(t)

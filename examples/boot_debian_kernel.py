"""Boot Debian's own kernel with pyvmm: fetch linux-image-*-amd64 with apt-get download, pull the ELF vmlinux out
of its bzImage (the xz decompressor is far too slow under an emulating KVM), package it with build-linux and
launch it with type=linux. Prints the kernel's console; `python examples/boot_debian_kernel.py [-m 1G] [-p 2]`.

On the development machines (kvm_pvm, ring-0 code emulated) the kernel prints its banner, command line, e820
map, ACPI tables and CPUs within the first minutes. The int3 of its live code patching, where KVM's emulator gives
up (and QEMU stops), is finished by pyvmm (vmm/emulate); with `-p 1 --timeout 540` at commit e7d9f22 it was still
booting at the timeout, in driver initialisation ("ledtrig-cpu: registered" at 358 s of kernel time, 540 s of
wall time, load average about 1.5). The kernel words below (noxsave, clearcpuid=...) still keep it off CPU
features whose instructions KVM's emulator here lacks, which makes the boot shorter.
"""

from __future__ import annotations

import argparse
import glob
import lzma
import os
import re
import subprocess
import sys
import tempfile

KERNEL_WORDS = ("console=ttyS0 noxsave mitigations=off clearcpuid=129,137,140,141,145,147,148,150,151,153,154,156,"
                "157,158,288,291,293,295,296,298,304,306,307,308,311,312,514,515,534 reboot=k panic=-1 nokaslr "
                "8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd")


def download_kernel_package(workdir: str) -> str:
    """Path of the newest linux-image-<abi>-amd64 package apt knows, downloaded into workdir (the only step that
    needs the network and apt's lists; everything after it works offline)."""
    names = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-image-[0-9].*-amd64$"], check=True,
                           capture_output=True, text=True).stdout.split()
    abi = re.compile(r"^linux-image-(\d+)\.(\d+)\.(\d+)-(\d+)-amd64$")     # a real kernel, not a metapackage
    pkgs = sorted((n for n in names if abi.match(n)), key=lambda n: [int(x) for x in abi.match(n).groups()])
    if not pkgs:
        raise RuntimeError("apt knows no linux-image-*-amd64 package (run apt-get update)")
    subprocess.run(["apt-get", "download", "-qq", pkgs[-1]], cwd=workdir, check=True, capture_output=True)
    debs = glob.glob(os.path.join(workdir, "linux-image-*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {pkgs[-1]} left no .deb in {workdir}")
    return debs[0]


def bzimage_from_package(deb: str, workdir: str) -> str:
    """Path of /boot/vmlinuz-* unpacked from the package."""
    subprocess.run(["dpkg-deb", "-x", deb, os.path.join(workdir, "x")], check=True)
    found = glob.glob(os.path.join(workdir, "x", "boot", "vmlinuz-*"))
    if not found:
        raise RuntimeError(f"{deb} holds no /boot/vmlinuz-*")
    return found[0]


def fetch_bzimage(workdir: str) -> str:
    """Path of /boot/vmlinuz-* from the newest linux-image-<abi>-amd64 package apt knows (downloaded, unpacked)."""
    return bzimage_from_package(download_kernel_package(workdir), workdir)


def vmlinux_from_bzimage(bzimage: bytes) -> bytes:
    """The ELF inside a bzImage: the first xz stream (found by its magic) that decompresses to an ELF."""
    pos = bzimage.find(b"\xfd7zXZ\x00")
    while pos >= 0:
        try:
            out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[pos:])
            if out[:4] == b"\x7fELF":
                return out
        except lzma.LZMAError:
            pass
        pos = bzimage.find(b"\xfd7zXZ\x00", pos + 1)
    raise ValueError("no xz-compressed ELF inside this bzImage")


def build_igvm(workdir: str, cmdline: str = KERNEL_WORDS, deb: str | None = None) -> str:
    """An IGVM file (pyvmm igvm build-linux) of the kernel in `deb` (downloaded when None)."""
    bzimage = bzimage_from_package(deb or download_kernel_package(workdir), workdir)
    vmlinux = os.path.join(workdir, "vmlinux")
    with open(bzimage, "rb") as fh, open(vmlinux, "wb") as out:
        out.write(vmlinux_from_bzimage(fh.read()))
    igvm = os.path.join(workdir, "debian.igvm")
    p = subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-linux", "--kernel", vmlinux, "--cmdline", cmdline,
                        "-o", igvm], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"pyvmm igvm build-linux failed with status {p.returncode}: {p.stderr.strip()}")
    return igvm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", default="1G")
    ap.add_argument("-p", default="2")
    ap.add_argument("--timeout", default="300")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        igvm = build_igvm(tmp)
        raise SystemExit(subprocess.call([sys.executable, "-m", "vmm", "--igvm", f"type=linux,path={igvm}", "-m", a.m,
                                          "-p", a.p, "--no-reboot", "--timeout", a.timeout]))


if __name__ == "__main__":
    main()

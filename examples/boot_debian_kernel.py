"""Boot Debian's own kernel with pyvmm: fetch linux-image-*-amd64 with apt-get download, pull the ELF vmlinux out
of its bzImage (the xz decompressor is far too slow under an emulating KVM), package it with build-linux and
launch it with type=linux. Prints the kernel's console; `python examples/boot_debian_kernel.py [-m 1G] [-p 2]`.

On the development machines (kvm_pvm, ring-0 code emulated) the kernel prints its banner, command line, e820
map, ACPI tables and CPUs after about 95-120 s and then stops on an int3 the emulator cannot run; the kernel
words below keep it off the other instructions that emulator lacks.
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


def fetch_bzimage(workdir: str) -> str:
    """Path of /boot/vmlinuz-* from the newest linux-image-<abi>-amd64 package apt knows (downloaded, unpacked)."""
    names = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-image-[0-9].*-amd64$"], check=True,
                           capture_output=True, text=True).stdout.split()
    abi = re.compile(r"^linux-image-(\d+)\.(\d+)\.(\d+)-(\d+)-amd64$")     # a real kernel, not a metapackage
    pkgs = sorted((n for n in names if abi.match(n)), key=lambda n: [int(x) for x in abi.match(n).groups()])
    if not pkgs:
        raise RuntimeError("apt knows no linux-image-*-amd64 package (run apt-get update)")
    subprocess.run(["apt-get", "download", "-qq", pkgs[-1]], cwd=workdir, check=True, capture_output=True)
    deb = glob.glob(os.path.join(workdir, "linux-image-*.deb"))[0]
    subprocess.run(["dpkg-deb", "-x", deb, os.path.join(workdir, "x")], check=True)
    return glob.glob(os.path.join(workdir, "x", "boot", "vmlinuz-*"))[0]


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


def build_igvm(workdir: str, cmdline: str = KERNEL_WORDS) -> str:
    vmlinux = os.path.join(workdir, "vmlinux")
    with open(fetch_bzimage(workdir), "rb") as fh, open(vmlinux, "wb") as out:
        out.write(vmlinux_from_bzimage(fh.read()))
    igvm = os.path.join(workdir, "debian.igvm")
    subprocess.run([sys.executable, "-m", "vmm", "igvm", "build-linux", "--kernel", vmlinux, "--cmdline", cmdline,
                    "-o", igvm], check=True, capture_output=True)
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

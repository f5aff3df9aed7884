"""Regenerate the SEV-SNP launch-digest vectors in this folder with microsoft/igvm-tooling (`igvmgen`).

Not run by the tests (it needs igvm-tooling, its pip dependencies, objcopy, as/ld and Debian's acpica-tools):
    python3 tests/data/snp_vectors/make_vectors.py /path/to/igvmgen
It builds two tiny inputs (a bzImage-shaped file and a static ELF), runs igvmgen for each case in CASES with
`-measurement_file`, and writes CASE.igvm.xz and vectors.json (the command and the digest igvmgen reported).
tests/test_snp_vectors.py checks that `pyvmm igvm measure` computes the same digest from each file.
"""

from __future__ import annotations

import json
import lzma
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def tiny_bzimage(payload: bytes | None = None) -> bytes:
    """A bzImage-shaped file: one setup sector after the boot sector, the Linux boot header (HdrS, protocol 2.15,
    64-bit entry flag, pref_address 0x1a00000, init_size 256 KiB) and `payload` (default: 6 KiB of deterministic
    bytes), which igvmgen loads at pref_address."""
    img = bytearray(1024)
    img[0x1F1] = 1                                    # setup_sects
    struct.pack_into("<H", img, 0x1FE, 0xAA55)
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, 0x20F)
    struct.pack_into("<H", img, 0x236, 1)             # xloadflags: XLF_KERNEL_64
    struct.pack_into("<Q", img, 0x258, 0x1A00000)     # pref_address
    struct.pack_into("<I", img, 0x260, 0x40000)       # init_size
    if payload is None:
        payload = bytes((i * 131 + (i >> 8) * 7) & 0xFF for i in range(6 * 1024))
    return bytes(img) + payload


ELF_SOURCE = """
.text
.globl _start
_start:
    mov $0x2a, %eax
1:  hlt
    jmp 1b
.data
msg: .ascii "igvm-tooling elf vector"
"""

BZ = ["-inform", "bzImage"]
BZ2 = ["-inform", "bzImage2"]             # bzImage plus -shared_payload in guest-invalid (shared) pages
ELF = ["-inform", "elf"]
# name -> igvmgen arguments (input files: @bz, @elf, @initrd, @shared)
CASES = {
    "bz-x64-enc": BZ + ["-kernel", "@bz", "-append", "console=ttyS0", "-boot_mode", "x64", "-vtl", "2",
                        "-encrypted_page", "true"],
    "bz-x64-plain": BZ + ["-kernel", "@bz", "-append", "console=ttyS0", "-boot_mode", "x64", "-vtl", "0",
                          "-encrypted_page", "false", "-svme", "false"],
    "bz-x86-plain": BZ + ["-kernel", "@bz", "-append", "panic=-1", "-boot_mode", "x86", "-vtl", "0",
                          "-encrypted_page", "false", "-svme", "false"],
    "bz-x86-enc": BZ + ["-kernel", "@bz", "-append", "panic=-1", "-boot_mode", "x86", "-encrypted_page", "true"],
    "bz-x86-nopvopt": BZ + ["-kernel", "@bz", "-append", "a", "-boot_mode", "x86", "-pvalidate_opt", "false",
                            "-encrypted_page", "false"],
    "bz-x64-nopvopt": BZ + ["-kernel", "@bz", "-append", "a", "-boot_mode", "x64", "-pvalidate_opt", "false"],
    "bz-x64-initrd": BZ + ["-kernel", "@bz", "-rdinit", "@initrd", "-append", "rdinit=/init", "-boot_mode", "x64"],
    "bz-x86-initrd": BZ + ["-kernel", "@bz", "-rdinit", "@initrd", "-append", "rdinit=/init", "-boot_mode", "x86",
                           "-encrypted_page", "false"],
    "bz-x64-shared": BZ2 + ["-kernel", "@bz", "-shared_payload", "@shared", "-append", "s", "-boot_mode", "x64"],
    "bz-x86-shared": BZ2 + ["-kernel", "@bz", "-shared_payload", "@shared", "-append", "s", "-boot_mode", "x86",
                           "-encrypted_page", "false"],
    "elf-x86": ELF + ["-kernel", "@elf", "-append", "append", "-boot_mode", "x86", "-vtl", "2",
                      "-encrypted_page", "false"],
    # the Linux boot probe of tests/linux_images.py (a bzImage whose 64-bit entry prints what it was given),
    # with igvmgen's defaults (-encrypted_page true: the C-bit in CR3 and the page tables; -svme true)
    # tests/guests/snp_bz32.S as startup_32 of a tiny bzImage: igvmgen's x86 mode enters it; it prints its cmdline
    "cmdline-x86": BZ + ["-kernel", "@bz32", "-append", "console=ttyS0 hello=snp", "-boot_mode", "x86",
                         "-encrypted_page", "false"],
    "probe-x64": BZ + ["-kernel", "@probe", "-append", "console=ttyS0 probe=snp", "-boot_mode", "x64"],
    # ELF in x64 mode (-pgtable_level 4) is left out: igvmgen then writes 34 MB of page tables (420 KB as xz).
}


def main(igvmgen: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {"@bz": os.path.join(tmp, "tiny.bzImage"), "@elf": os.path.join(tmp, "tiny.elf"),
                  "@initrd": os.path.join(tmp, "initrd"), "@shared": os.path.join(tmp, "shared"),
                  "@probe": os.path.join(tmp, "probe.bzImage"), "@bz32": os.path.join(tmp, "bz32.bzImage")}
        sys.path.insert(0, ROOT)
        from tests.linux_images import PROBE_PREF_ADDRESS, make_bzimage
        from tests.guests.build import build
        with open(inputs["@probe"], "wb") as fh:     # linked where igvmgen puts the 64-bit entry
            fh.write(make_bzimage(build("linux_start.S", extra_sources=("linux_probe.c",),
                                        load_addr=PROBE_PREF_ADDRESS + 0x200)))
        with open(inputs["@bz32"], "wb") as fh:
            fh.write(tiny_bzimage(build("snp_bz32.S", load_addr=0x1A00000)))
        with open(inputs["@bz"], "wb") as fh:
            fh.write(tiny_bzimage())
        with open(inputs["@initrd"], "wb") as fh:
            fh.write(b"initrd!\n" * 700)              # 5,600 bytes: two pages
        with open(inputs["@shared"], "wb") as fh:
            fh.write(bytes(range(256)) * 20)          # 5,120 bytes: two pages
        src = os.path.join(tmp, "tiny.s")
        with open(src, "w") as fh:
            fh.write(ELF_SOURCE)
        subprocess.run(["as", "--64", "-o", src + ".o", src], check=True)
        subprocess.run(["ld", "-static", "-Ttext=0x1000", "-o", inputs["@elf"], src + ".o"], check=True)
        vectors = {}
        for name, args in CASES.items():
            out = os.path.join(tmp, name + ".igvm")
            meas = os.path.join(tmp, name + ".json")
            argv = [inputs.get(a, a) for a in args]
            subprocess.run([igvmgen, "-o", out, "-measurement_file", meas, *argv], check=True, cwd=tmp,
                           stdout=subprocess.DEVNULL)
            with open(meas) as fh:
                digest = json.load(fh)["x-ms-sevsnpvm-launchmeasurement"]
            with open(out, "rb") as fh:
                data = fh.read()
            with open(os.path.join(HERE, name + ".igvm.xz"), "wb") as fh:
                fh.write(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
            vectors[name] = {"command": "igvmgen -o OUT -measurement_file M " + " ".join(args),
                             "file_size": len(data), "launch_digest": digest}
            print(name, len(data), digest)
        vectors["_generator"] = {"tool": "microsoft/igvm-tooling igvmgen at commit 53656dd",
                                 "inputs": "@bz: tiny_bzimage(); @elf: ELF_SOURCE via as/ld; @initrd: "
                                           "b'initrd!\\n' * 700; @shared: bytes(range(256)) * 20; "
                                           "@probe: tests/linux_images.py make_bzimage of the probe; "
                                           "@bz32: tiny_bzimage(tests/guests/snp_bz32.S at 0x1a00000)"}
    with open(os.path.join(HERE, "vectors.json"), "w") as fh:
        json.dump(vectors, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "igvmgen")

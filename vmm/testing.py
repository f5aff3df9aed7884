"""Guest IGVM files for loader regression tests, in one place: build one without a compiler, or wrap your own code.

Every helper returns the bytes of an IGVM file; pass them (or a path you wrote them to) to `vmm.api.run_igvm`,
the `pyvmm_run` fixture or the `igvm_snapshot` fixture of pyvmm's pytest plugin (vmm/pytest_plugin.py).

- `tiny_guest(message, exit_code)`: prints `message` on COM1 and ends the run through the debug-exit port, so the
  run's status is `(exit_code << 1) | 1`. No toolchain needed: the code is fixed machine code (below, with the
  GNU as source it was assembled from).
- `crashing_guest()`: jumps into the MMIO hole, which KVM cannot execute: status 3 with a register dump.
- `flat_guest(image, ...)`: any flat 64-bit code image of yours (linked at 0x100000), with the parameter areas
  you ask for (`ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x20000)`, ...), as `loaders.igvm.pack.pack_flat_image`.
- `assemble(source)`: GNU as source (AT&T syntax, `.code64`, a `_start` label) -> a flat image for `flat_guest`,
  with gcc and objcopy (ToolchainMissing when they are not on PATH).

Each file starts its BSP in 64-bit long mode at 0x100000 with a flat GDT at 0x1000, identity page tables at
0x9000 (4 GiB, 2 MiB pages) and RSP = 0x80000; NATIVE platform (IGVM v2) unless `platform=` says otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from loaders.igvm.constants import HeaderType, Platform
from loaders.igvm.pack import ParamSpec, pack_flat_image

__all__ = ["HeaderType", "ParamSpec", "Platform", "ToolchainMissing", "assemble", "crashing_guest", "flat_guest",
           "tiny_guest"]

LOAD_ADDR = 0x100000

# GNU as (x86-64), linked at 0x100000; `objdump -d` of the result gives these bytes:
#     lea msg(%rip),%rsi        48 8d 35 20 00 00 00
#  1: lodsb                     ac
#     test %al,%al              84 c0
#     jz 3f                     74 14
#     mov %al,%bl               88 c3
#     mov $0x3fd,%dx            66 ba fd 03
#  2: in %dx,%al                ec            (LSR: wait for the transmit register to empty)
#     test $0x20,%al            a8 20
#     jz 2b                     74 fb
#     mov $0x3f8,%dx            66 ba f8 03
#     mov %bl,%al               88 d8
#     out %al,%dx               ee
#     jmp 1b                    eb e7
#  3: mov $EXIT,%al             b0 EXIT       (offset 0x21)
#     out %al,$0xf4             e6 f4         (debug exit)
#  4: hlt; jmp 4b               f4 eb fd
# msg: .asciz MESSAGE           (offset 0x27)
_TINY_CODE = bytes.fromhex("488d3520000000ac84c0741488c366bafd03eca82074fb66baf80388d8eeebe7b010e6f4f4ebfd")
_EXIT_OFFSET = 0x21
# mov $0xc0000000,%eax; jmp *%rax: an instruction fetch from the MMIO hole (no RAM there to run).
_CRASH_CODE = bytes.fromhex("b8000000c0ffe0")


class ToolchainMissing(RuntimeError):
    """gcc or objcopy is not on PATH (apt-get install gcc binutils)."""


def flat_guest(image: bytes, *, params: tuple[ParamSpec, ...] = (), platform: Platform = Platform.NATIVE,
               regs: dict[str, int] | None = None, version: int | None = None) -> bytes:
    """An IGVM file that runs a flat 64-bit image linked at 0x100000, with the parameter areas in `params`."""
    return pack_flat_image(image, LOAD_ADDR, platform=platform, params=params, regs=regs, version=version)


def tiny_guest(message: bytes | str = b"hello\n", exit_code: int = 0x10, *, params: tuple[ParamSpec, ...] = (),
               platform: Platform = Platform.NATIVE) -> bytes:
    """A guest that prints `message` on COM1 and exits with debug-exit value `exit_code` (status (v << 1) | 1)."""
    if isinstance(message, str):
        message = message.encode()
    if b"\0" in message:
        raise ValueError("the message of tiny_guest cannot contain NUL bytes")
    if not 0 <= exit_code <= 0xFF:
        raise ValueError(f"exit_code {exit_code} is not a byte")
    code = bytearray(_TINY_CODE)
    code[_EXIT_OFFSET] = exit_code
    return flat_guest(bytes(code) + message + b"\0", params=params, platform=platform)


def crashing_guest(*, platform: Platform = Platform.NATIVE) -> bytes:
    """A guest whose run ends with status 3 (KVM cannot fetch instructions from MMIO) and a register dump."""
    return flat_guest(_CRASH_CODE, platform=platform)


def assemble(source: str) -> bytes:
    """A flat binary of GNU as source with a `_start` label, linked at 0x100000 (gcc -nostdlib, objcopy)."""
    missing = [t for t in ("gcc", "objcopy") if shutil.which(t) is None]
    if missing:
        raise ToolchainMissing(f"missing {', '.join(missing)} (apt-get install gcc binutils)")
    with tempfile.TemporaryDirectory(prefix="pyvmm-guest-") as tmp:
        src, elf, out = (os.path.join(tmp, n) for n in ("g.S", "g.elf", "g.bin"))
        with open(src, "w") as fh:
            fh.write(source)
        for cmd in (["gcc", "-nostdlib", "-static", f"-Wl,-Ttext={LOAD_ADDR:#x}", "-Wl,--build-id=none",
                     "-Wl,--no-warn-rwx-segments", "-o", elf, src],
                    ["objcopy", "-O", "binary", "-j", ".text", "-j", ".data", "-j", ".rodata", elf, out]):
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                raise RuntimeError(f"{cmd[0]} failed:\n{p.stdout}{p.stderr}")
        with open(out, "rb") as fh:
            return fh.read()

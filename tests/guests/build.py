"""Compile the test guests in this folder (assembly or freestanding C) into flat binaries, cached by content.

The cache key covers the source, the load address, the toolchain command lines and the compiler version,
so an edited guest is rebuilt and an unchanged one costs a file read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("PYVMM_GUEST_CACHE", HERE / ".cache"))
TOOLS = ("gcc", "ld", "objcopy")


class GuestBuildError(RuntimeError):
    pass


def toolchain_missing() -> str | None:
    """None when gcc/ld/objcopy are on PATH, else a reason (tests skip with it)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    return f"missing tools: {', '.join(missing)} (apt-get install gcc binutils)" if missing else None


def _run(cmd: list[str], cwd: Path) -> None:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise GuestBuildError(f"{' '.join(cmd)} failed:\n{p.stdout}{p.stderr}")


def _compiler_id() -> str:
    p = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    return p.stdout.splitlines()[0] if p.stdout else "gcc"


def build(name: str, load_addr: int = 0x100000, code16: bool = False, defines: dict[str, int] | None = None,
          extra_sources: tuple[str, ...] = (), elf: bool = False, ld_flags: tuple[str, ...] = ()) -> bytes:
    """Flat binary of tests/guests/<name> (.S or .c; extra_sources are linked after it) linked at load_addr;
    with elf=True the linked ELF executable instead (a vmlinux-like image with physical = virtual addresses).
    ld_flags go to the linker (e.g. -n: ELF headers not in a loaded segment)."""
    sources = [HERE / name, *(HERE / s for s in extra_sources)]
    defs = sorted((defines or {}).items())
    flags = ["-nostdlib", "-ffreestanding", "-fno-pic", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
             "-mno-red-zone", "-mgeneral-regs-only", "-Os", "-fno-builtin", "-fno-reorder-functions", "-Wall"]
    flags += ["-m16"] if code16 else ["-m64", "-mcmodel=kernel" if load_addr >= 1 << 31 else "-mcmodel=small"]
    flags += [f"-D{k}={v}" for k, v in defs] + [f"-I{HERE}"]
    key = hashlib.sha256()
    for s in sources:
        key.update(s.name.encode() + b"\0" + s.read_bytes())
    for h in sorted(HERE.glob("*.h")):
        key.update(h.read_bytes())
    key.update(repr((load_addr, code16, flags, ld_flags, _compiler_id())).encode())
    out = CACHE / f"{Path(name).stem}-{key.hexdigest()[:20]}.{'elf' if elf else 'bin'}"
    if out.exists():
        return out.read_bytes()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        objs = []
        for i, s in enumerate(sources):
            o = t / f"{i}.o"
            _run(["gcc", *flags, "-c", str(s), "-o", str(o)], t)
            objs.append(str(o))
        emul = ["-m", "elf_i386"] if code16 else []
        _run(["ld", *emul, "-static", "-nostdlib", "-e", "_start", "-Ttext", hex(load_addr), "--no-warn-rwx-segments",
              *ld_flags, "-o", "guest.elf", *objs], t)
        _run(["objcopy", "-O", "binary", "guest.elf", "guest.bin"], t)
        data = (t / ("guest.elf" if elf else "guest.bin")).read_bytes()
        tmp_out = out.with_suffix(f".{os.getpid()}.tmp")
        tmp_out.write_bytes(data)
        os.replace(tmp_out, out)
    return data

"""Build the vmfwupdate example: stage1.igvm (the loader) and stage2.igvm (the firmware it installs).

    python3 examples/vmfwupdate/build.py [OUTDIR]      (default: examples/vmfwupdate/out; needs gcc, ld, objcopy)

Each stage is compiled freestanding, linked at 1 MiB and packaged by pyvmm's IGVM writer as a NATIVE file that
starts the BSP in 64-bit mode there (loaders.igvm.pack.pack_flat_image).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from loaders.igvm.pack import pack_flat_image  # noqa: E402

LOAD = 0x100000
CFLAGS = ["-m64", "-O2", "-ffreestanding", "-nostdlib", "-fno-pic", "-fno-stack-protector", "-mno-red-zone",
          "-mgeneral-regs-only", "-fno-asynchronous-unwind-tables", "-Wall"]


def compile_stage(source: Path, tmp: Path) -> bytes:
    obj, elf, flat = tmp / f"{source.stem}.o", tmp / f"{source.stem}.elf", tmp / f"{source.stem}.bin"
    subprocess.run(["gcc", *CFLAGS, f"-I{HERE}", "-c", str(source), "-o", str(obj)], check=True)
    subprocess.run(["ld", "-static", "-nostdlib", "-e", "_start", "-Ttext", hex(LOAD), "--no-warn-rwx-segments",
                    "-o", str(elf), str(obj)], check=True)
    subprocess.run(["objcopy", "-O", "binary", str(elf), str(flat)], check=True)
    return flat.read_bytes()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else HERE / "out"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for stage in ("stage1", "stage2"):
            path = out / f"{stage}.igvm"
            path.write_bytes(pack_flat_image(compile_stage(HERE / f"{stage}.c", Path(tmp)), LOAD))
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

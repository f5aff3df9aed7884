"""Regenerate examples/hello-uefi.igvm, the payload the README's first command launches.

It is tests/guests/uefi_probe.c (what a UEFI SEC phase does with R12: find the config blob, check it, print
what it found) packaged with loaders.igvm.pack as a NATIVE IGVM without a blob of its own, so
`--igvm type=uefi` hands it OpenVMM's config blob. It ends by resetting the machine (status 0 with
--no-reboot). Needs gcc/binutils: python examples/make_hello_uefi.py
"""

from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders.igvm.pack import pack_flat_image  # noqa: E402
from tests.guests.build import build  # noqa: E402


def main() -> None:
    image = build("uefi_start.S", extra_sources=("uefi_probe.c",), defines={"EXIT_BY_RESET": 1})
    out = ROOT / "examples" / "hello-uefi.igvm"
    out.write_bytes(pack_flat_image(image))
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

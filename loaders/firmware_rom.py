"""PC firmware ROM images (QEMU's -bios files, edk2's OVMF.fd): the checks a ROM must pass, and the image packaged
as a NATIVE IGVM file that a VMM loads like -bios.

The IGVM form is what QEMU's IGVM backend boots as native firmware (backends/igvm.c, target/i386/igvm.c): the
image as 4 KiB PAGE_DATA (NORMAL) ending at 4 GiB, one NATIVE platform, and no VP context, so the boot processor
starts from the x86 reset state at 0xFFFFFFF0 as with -bios (roy-hopkins/buildigvm's `native` target lays OVMF
out the same way, as version 1).
"""

from __future__ import annotations

from .errors import LoadError
from .x86 import FOUR_GIB

ROM_UNIT = 64 << 10          # QEMU refuses a -bios file whose size is not a multiple of 64 KiB
ROM_MAX = 16 << 20           # the 16 MiB below 4 GiB that firmware may occupy (edk2's SEC looks no lower)


def check_rom(data: bytes, path: str) -> None:
    """LoadError (one line naming the file) for an image that cannot be a PC firmware ROM."""
    n = len(data)
    if n == 0:
        raise LoadError(f"{path}: the firmware image is empty")
    if n % ROM_UNIT:
        raise LoadError(f"{path}: firmware image size {n:,} bytes is not a multiple of 64 KiB")
    if n > ROM_MAX:
        raise LoadError(f"{path}: firmware image is {n:,} bytes; at most {ROM_MAX:,} (16 MiB) fits below 4 GiB")


def build_rom_igvm(image: bytes, path: str = "ROM") -> bytes:
    """A NATIVE, version 2 IGVM file holding the ROM as pages that end at 4 GiB, with no VP context."""
    from .igvm.builder import IgvmBuilder
    from .igvm.constants import Platform
    check_rom(image, path)
    b = IgvmBuilder(version=2)
    mask = b.platform(Platform.NATIVE)
    b.pages(FOUR_GIB - len(image), image, mask)
    return b.build()

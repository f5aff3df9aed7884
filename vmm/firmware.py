"""The firmware window: a ROM image mapped read-only so it ends at 4 GiB, its top 128 KiB seen again at
0xE0000-0xFFFFF, as QEMU's `-bios` (hw/i386/x86-common.c x86_bios_rom_init and x86_isa_bios_init).

Under KVM the window is a KVM_MEM_READONLY memslot (QEMU: accel/kvm/kvm-all.c kvm_mem_flags): the guest executes
from it in place and its writes exit as MMIO, which the machine ignores. The same window is where a native IGVM
file puts firmware pages that end at 4 GiB (QEMU backends/igvm.c gives such pages memory of their own).
"""

from __future__ import annotations

from loaders.errors import LoadError
from loaders.firmware_rom import FOUR_GIB, ROM_MAX, ROM_UNIT, check_rom

__all__ = ["FOUR_GIB", "ROM_MAX", "ROM_UNIT", "check_rom", "FirmwareWindow", "GuestView", "read_rom", "ram_slots",
           "window_for"]


def read_rom(path: str) -> bytes:
    """The image of --bios / build-rom --rom, checked; LoadError for an unreadable or unusable file."""
    from .files import read_file
    data = bytes(read_file(path))
    check_rom(data, path)
    return data


def window_for(ranges: list[tuple[int, int]]) -> int:
    """The window size (64 KiB units, ending at 4 GiB) that covers plan ranges [start, end) lying in the top
    16 MiB below 4 GiB; 0 when none does."""
    starts = [s for s, e in ranges if FOUR_GIB - ROM_MAX <= s and e <= FOUR_GIB]
    if not starts:
        return 0
    return FOUR_GIB - min(starts) // ROM_UNIT * ROM_UNIT


class FirmwareWindow:
    """Host memory for a window of `size` bytes ending at 4 GiB; filled before the guest starts."""

    def __init__(self, size: int, image: bytes | None = None) -> None:
        from kvm.mman import HostMapping
        if size <= 0 or size % ROM_UNIT or size > ROM_MAX:
            raise LoadError(f"firmware window of {size:#x} bytes: must be 64 KiB units, at most 16 MiB")
        self.size = size
        self.gpa = FOUR_GIB - size
        self.mapping = HostMapping(size, what="mmap firmware window")
        self.reported_write = False
        if image is not None:
            self.write(FOUR_GIB - len(image), image)

    def contains(self, gpa: int, size: int = 1) -> bool:
        return self.gpa <= gpa and gpa + size <= FOUR_GIB

    def write(self, gpa: int, data: bytes | memoryview) -> None:
        if not self.contains(gpa, len(data)):
            raise LoadError(f"{gpa:#x}+{len(data):#x} is outside the firmware window {self.gpa:#x}-{FOUR_GIB:#x}")
        off = gpa - self.gpa
        self.mapping.view[off:off + len(data)] = data

    def slots(self, alias: tuple[int, int]) -> list[tuple[int, int, int]]:
        """(gpa, size, host address) of the window and of its low alias (the top alias bytes, at alias gpa)."""
        a_gpa, a_size = alias
        a_size = min(a_size, self.size)
        return [(self.gpa, self.size, self.mapping.addr),
                (a_gpa + alias[1] - a_size, a_size, self.mapping.addr + self.size - a_size)]

    def close(self) -> None:
        self.mapping.close()


def ram_slots(regions: list[tuple[int, int, int]], hole: tuple[int, int] | None) -> list[tuple[int, int, int]]:
    """RAM (gpa, size, host address) pieces with `hole` (gpa, size) cut out, so an alias can sit there."""
    if hole is None:
        return list(regions)
    h0, h1 = hole[0], hole[0] + hole[1]
    out = []
    for gpa, size, addr in regions:
        end = gpa + size
        if end <= h0 or h1 <= gpa:
            out.append((gpa, size, addr))
            continue
        if gpa < h0:
            out.append((gpa, h0 - gpa, addr))
        if h1 < end:
            out.append((h1, end - h1, addr + h1 - gpa))
    return out


def load_targets(ram: list[tuple[int, int]], window: int, top_ram: int,
                 alias: tuple[int, int]) -> list[tuple[int, int]]:
    """(gpa, size) ranges a plan may write, as the machine maps them: RAM, less the window's alias below 1 MiB
    (`alias`: gpa, size; ROM, not RAM) when there is a window of `window` bytes ending at 4 GiB, that window, and
    `top_ram` bytes of RAM ending at 4 GiB (a TDX image's). For Machine.load_ranges, and for vmm.igvm_source before
    a machine exists."""
    if window:
        ram = [(g, n) for g, n, _ in ram_slots([(g, n, 0) for g, n in ram], alias)] + [(FOUR_GIB - window, window)]
    return ram + ([(FOUR_GIB - top_ram, top_ram)] if top_ram else [])


class GuestView:
    """Guest-physical reads over RAM and the firmware window (and its alias), for the register dump and for
    anything that fetches guest code or data in the VMM; writes reach RAM only, the ROM ignores them."""

    def __init__(self, memory, window: FirmwareWindow, alias: tuple[int, int]) -> None:
        self.memory = memory
        self.window = window
        a_size = min(alias[1], window.size)
        self.alias = (alias[0] + alias[1] - a_size, a_size)

    def _rom_offset(self, gpa: int, size: int) -> int | None:
        w = self.window
        if w.contains(gpa, size):
            return gpa - w.gpa
        a0, an = self.alias
        if a0 <= gpa and gpa + size <= a0 + an:
            return w.size - an + gpa - a0
        return None

    def contains(self, gpa: int, size: int) -> bool:
        return self._rom_offset(gpa, size) is not None or self.memory.contains(gpa, size)

    def read(self, gpa: int, size: int) -> bytes:
        off = self._rom_offset(gpa, size)
        if off is None:
            return self.memory.read(gpa, size)
        return bytes(self.window.mapping.view[off:off + size])

    def write(self, gpa: int, data: bytes) -> None:
        if self._rom_offset(gpa, len(data)) is None:
            self.memory.write(gpa, data)

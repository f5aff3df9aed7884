"""Kernel images a direct-boot loader accepts: a bzImage (setup header, 64-bit entry) or an ELF vmlinux
(PT_LOAD segments at their physical addresses, PVH note). Every field is checked before use."""

from __future__ import annotations

import struct
from ..record import field, record

from ..errors import LoadError
from .bootparams import HEADER_AT, LOADED_HIGH, SETUP_HEADER, XLF_KERNEL_64, is_bzimage, setup_header

BZIMAGE_LOAD = 0x100000
MIN_PROTOCOL = 0x020C       # first version with xloadflags (the 64-bit entry flag)
HEADER_CAP = 0x280          # at most this much of a file is taken as setup header (the rest is setup code)
BZIMAGE_MIN = 0x270         # a file shorter than this cannot hold a 2.12+ setup header


@record
class Segment:
    gpa: int
    data: bytes | memoryview
    memsz: int


@record
class Kernel:
    """What the loader places: segments, the 64-bit entry, and the limits the kernel declares."""
    kind: str                                    # "bzImage" or "vmlinux"
    segments: list[Segment]
    entry: int
    setup_header: bytes = b""                    # bzImage: bytes 0x1f1.. of the file, copied into the zero page
    protocol: int = 0
    initrd_addr_max: int = 0x7FFFFFFF
    cmdline_size: int = 2048
    kernel_alignment: int = 0x200000
    init_size: int = 0
    pref_address: int = 0x1000000
    pvh_entry: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def end(self) -> int:
        """First byte past everything the kernel occupies, the decompressor's working area included."""
        ends = [s.gpa + s.memsz for s in self.segments]
        if self.init_size:
            ends.append(max(self.pref_address, BZIMAGE_LOAD) + self.init_size)
        return max(ends)


def parse_kernel(data: bytes) -> Kernel:
    if data[:4] == b"\x7fELF":
        return parse_vmlinux(data)
    if is_bzimage(data):
        return parse_bzimage(data)
    raise LoadError("not a Linux kernel: neither an ELF vmlinux nor a bzImage (no 'HdrS' setup header at 0x202)")


def parse_bzimage(data: bytes) -> Kernel:
    if len(data) < BZIMAGE_MIN:
        raise LoadError(f"bzImage is truncated: {len(data)} bytes, the setup header alone needs {BZIMAGE_MIN:#x}")
    hdr = setup_header(data)
    version = hdr.version
    if version < MIN_PROTOCOL:
        raise LoadError(f"boot protocol {version >> 8}.{version & 0xFF:02d} is too old; a 64-bit direct boot needs "
                        "2.12 or later")
    if not hdr.xloadflags & XLF_KERNEL_64:
        raise LoadError("this kernel has no 64-bit entry point (xloadflags bit 0 clear): a 32-bit-only kernel "
                        "cannot be booted directly in long mode")
    if not hdr.loadflags & LOADED_HIGH:
        raise LoadError("zImage (not loaded high) kernels are not supported")
    pm_offset = setup_size(hdr)
    syssize = hdr.syssize * 16
    if pm_offset >= len(data):
        raise LoadError(f"bzImage is truncated: its protected-mode code should start at {pm_offset:#x} but the "
                        f"file is {len(data):#x} bytes")
    if syssize and pm_offset + syssize - 15 > len(data):        # syssize counts 16-byte paragraphs, rounded up
        raise LoadError(f"bzImage is truncated: syssize says {syssize:#x} bytes of kernel after {pm_offset:#x}, "
                        f"the file has {len(data) - pm_offset:#x}")
    header_end = min(HEADER_AT + (hdr.jump >> 8), HEADER_CAP)     # boot.rst: 0x202 + the byte at 0x201
    pm = memoryview(data)[pm_offset:]
    k = Kernel("bzImage", [Segment(BZIMAGE_LOAD, pm, len(pm))], BZIMAGE_LOAD + 0x200,
               setup_header=bytes(data[SETUP_HEADER:header_end]), protocol=version,
               initrd_addr_max=hdr.initrd_addr_max, kernel_alignment=hdr.kernel_alignment or 0x200000,
               cmdline_size=hdr.cmdline_size if version >= 0x0206 else 255,
               pref_address=hdr.pref_address, init_size=hdr.init_size)
    return k


def setup_size(hdr) -> int:
    """Bytes of real-mode setup before the protected-mode code: (setup_sects or 4, plus the boot sector) * 512."""
    return ((hdr.setup_sects or 4) + 1) * 512


ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
PT_LOAD, PT_NOTE = 1, 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def parse_vmlinux(data: bytes) -> Kernel:
    if len(data) < ELF_HEADER.size:
        raise LoadError("ELF kernel is truncated before the end of its ELF header")
    ident, etype, machine, _, entry, phoff, _, _, _, phentsize, phnum, _, _, _ = ELF_HEADER.unpack_from(data, 0)
    if ident[4] != 2 or ident[5] != 1:
        raise LoadError("ELF kernel is not 64-bit little-endian: a 32-bit vmlinux cannot be booted in long mode")
    if machine != 62:
        raise LoadError(f"ELF kernel is for machine {machine}, not x86-64 (62)")
    if phentsize != PHDR.size or phnum == 0 or phoff + phnum * PHDR.size > len(data):
        raise LoadError("ELF kernel's program headers are missing or run past the end of the file")
    segs: list[Segment] = []
    pvh = None
    for i in range(phnum):
        ptype, _, off, vaddr, paddr, filesz, memsz, _ = PHDR.unpack_from(data, phoff + i * PHDR.size)
        if ptype == PT_LOAD and memsz:
            if filesz > memsz or off + filesz > len(data):
                raise LoadError(f"ELF kernel segment {i} is truncated (file bytes {off:#x}+{filesz:#x} of "
                                f"{len(data):#x})")
            if paddr + memsz > 1 << 46:
                raise LoadError(f"ELF kernel segment {i} at {paddr:#x}+{memsz:#x} is outside any guest memory")
            segs.append(Segment(paddr, memoryview(data)[off:off + filesz], memsz))
        elif ptype == PT_NOTE and off + filesz <= len(data):
            pvh = _pvh_entry(memoryview(data)[off:off + filesz]) or pvh
    if not segs:
        raise LoadError("ELF kernel has no loadable segments")
    segs.sort(key=lambda s: s.gpa)
    for a, b in zip(segs, segs[1:]):
        if b.gpa < a.gpa + a.memsz:
            raise LoadError(f"ELF kernel segments at {a.gpa:#x} and {b.gpa:#x} overlap")
    if not any(s.gpa <= entry < s.gpa + s.memsz for s in segs):
        raise LoadError(f"ELF kernel entry {entry:#x} is not inside a loaded segment (a virtual address? the "
                        "64-bit boot needs the physical entry)")
    return Kernel("vmlinux", segs, entry, pvh_entry=pvh)


def _pvh_entry(notes: memoryview) -> int | None:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
        name_end = pos + 12 + namesz
        desc = name_end + (-namesz % 4)
        if desc + descsz > len(notes):
            return None
        if ntype == XEN_ELFNOTE_PHYS32_ENTRY and bytes(notes[pos + 12:name_end]).rstrip(b"\0") == b"Xen" \
                and descsz >= 4:
            return struct.unpack_from("<I", notes, desc)[0]
        pos = desc + descsz + (-descsz % 4)
    return None

"""`pyvmm igvm build-linux`: a NATIVE v2 IGVM in igvmfilegen's Linux direct-boot layout (OpenVMM vm/loader/igvmfilegen
and vm/loader/src/linux.rs), with its known mistakes fixed: RFLAGS is 0x2, cmdline_size is the kernel's own limit,
bzImage works too.

GPA layout: zero page 0x1000, GDT 0x2000, identity page tables 0x3000-0x8fff, parameter areas: command line
0xa000 (the default command line is its initial contents), memory map 0xb000 (4 pages), MADT 0xf000, SRAT
0x10000 (2 pages), SLIT 0x12000, PPTT 0x13000; the kernel at its own address, the initrd 2 MiB-aligned after it.
"""

from __future__ import annotations

from ..errors import LoadError
from ..igvm import model as m
from ..igvm.builder import IgvmBuilder
from ..igvm.constants import HeaderType, Platform
from ..igvm.vpcontext import build_native_context
from ..x86 import flat_gdt, identity_page_tables
from .bootparams import BOOT_FLAG, HDRS, LOADED_HIGH, SETUP_HEADER, ZERO_PAGE_SIZE, BootParams
from .kernel import Kernel, parse_kernel

ZERO_PAGE = 0x1000
GDT = 0x2000
PAGE_TABLES = 0x3000
CMDLINE = 0xA000
AREAS = ((HeaderType.COMMAND_LINE, CMDLINE, 1), (HeaderType.MEMORY_MAP, CMDLINE + 0x1000, 4), (HeaderType.MADT, 0xF000, 1),
         (HeaderType.SRAT, 0x10000, 2), (HeaderType.SLIT, 0x12000, 1), (HeaderType.PPTT, 0x13000, 1))
BOOT_DATA_END = 0x14000
INITRD_ALIGN = 2 << 20
UNDEFINED_LOADER = 0xFF       # type_of_loader for a boot loader with no assigned id
VMLINUX_PROTOCOL = 0x020F     # the boot protocol a zero page claims for a vmlinux, which has no header of its own


def zero_page(kernel: Kernel, initrd_gpa: int, initrd_size: int) -> bytearray:
    """boot_params with the setup header (the kernel's own for a bzImage), loader type, initrd and cmdline pointer."""
    zp = bytearray(ZERO_PAGE_SIZE)
    hdr = BootParams.from_buffer(zp).hdr
    if kernel.setup_header:
        zp[SETUP_HEADER:SETUP_HEADER + len(kernel.setup_header)] = kernel.setup_header
    else:
        hdr.version = VMLINUX_PROTOCOL
        hdr.loadflags = LOADED_HIGH
        hdr.kernel_alignment = kernel.kernel_alignment
        hdr.cmdline_size = kernel.cmdline_size
    hdr.boot_flag = BOOT_FLAG
    hdr.header = HDRS
    hdr.type_of_loader = UNDEFINED_LOADER
    hdr.ramdisk_image, hdr.ramdisk_size = initrd_gpa, initrd_size
    hdr.cmd_line_ptr = CMDLINE
    del hdr                                     # release the export of zp before the caller resizes or copies it
    return zp


def _page_regions(kernel: Kernel) -> list[tuple[int, bytearray]]:
    """Segments laid into page-aligned regions; segments that share a page end up in one region."""
    regions: list[tuple[int, bytearray]] = []
    for seg in sorted(kernel.segments, key=lambda s: s.gpa):
        start = seg.gpa & ~0xFFF
        if regions and start < regions[-1][0] + len(regions[-1][1]):
            base, buf = regions[-1]
        else:
            base, buf = start, bytearray()
            regions.append((base, buf))
        end = seg.gpa + seg.memsz - base
        if len(buf) < end:
            buf.extend(bytes(end - len(buf)))
        buf[seg.gpa - base:seg.gpa - base + len(seg.data)] = seg.data
    return regions


def build_linux_igvm(kernel_data: bytes, initrd: bytes = b"", cmdline: str = "") -> bytes:
    """The IGVM file; LoadError for a kernel or initrd this layout cannot hold."""
    kernel = parse_kernel(kernel_data)
    raw_cmdline = cmdline.encode()
    if b"\0" in raw_cmdline:
        raise LoadError("the command line contains a NUL byte")
    if len(raw_cmdline) >= min(4096, kernel.cmdline_size + 1):
        raise LoadError(f"the command line is {len(raw_cmdline)} bytes; the kernel accepts at most "
                        f"{min(4095, kernel.cmdline_size)}")
    low = min(s.gpa for s in kernel.segments)
    if low < 0x100000:
        raise LoadError(f"the kernel loads at {low:#x}, inside the boot data below 1 MiB")
    initrd_gpa = 0
    if initrd:
        initrd_gpa = (kernel.end + INITRD_ALIGN - 1) // INITRD_ALIGN * INITRD_ALIGN
        if initrd_gpa + len(initrd) - 1 > kernel.initrd_addr_max:
            raise LoadError(f"the initrd ({len(initrd):#x} bytes at {initrd_gpa:#x}) ends above the kernel's "
                            f"initrd_addr_max {kernel.initrd_addr_max:#x}")
    b = IgvmBuilder(version=2)
    mask = b.platform(Platform.NATIVE)
    for start, image in _page_regions(kernel):
        b.pages(start, image, mask)
    if initrd:
        b.pages(initrd_gpa, initrd, mask)
    b.pages(ZERO_PAGE, zero_page(kernel, initrd_gpa, len(initrd)), mask)
    gdt, segs = flat_gdt()
    b.pages(GDT, gdt, mask)
    b.pages(PAGE_TABLES, identity_page_tables(PAGE_TABLES), mask)
    for index, (usage, gpa, pages) in enumerate(AREAS):
        initial = (raw_cmdline + b"\0").ljust(4096, b"\0") if usage == HeaderType.COMMAND_LINE else None
        b.add(m.ParameterArea(pages * 4096, index, initial))
        b.add(m.ParameterUsage(usage, index, 0))
        b.add(m.ParameterInsert(gpa, mask, index))
    cs, ds = segs["cs"], segs["ds"]
    ctx = build_native_context(rip=kernel.entry, rsi=ZERO_PAGE, rflags=0x2, cr0=0x80000001, cr3=PAGE_TABLES,
                               cr4=0x20, efer=0xD01, gdtr_base=GDT, gdtr_limit=len(gdt) - 1,
                               code_selector=cs.selector, code_limit=cs.limit, code_attributes=cs.attributes,
                               data_selector=ds.selector, data_limit=ds.limit, data_attributes=ds.attributes)
    b.add(m.VpContext(0, mask, 0, ctx))
    return b.build()

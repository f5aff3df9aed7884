"""The SEV-SNP CPUID page (AMD SNP firmware ABI, "CPUID Reporting"; Linux `struct snp_cpuid_table`), filled
for a non-confidential launch from the CPUID values the VMM gives the guest.

Layout, 4096 bytes: count u32, reserved u32, reserved u64, then up to 64 entries of 48 bytes: eax_in, ecx_in
(u32), xcr0_in, xss_in (u64), eax, ebx, ecx, edx (u32), reserved u64.

IGVM files carry a template (inputs with zero outputs). Where the template is usable (count 1..64) each of its
entries gets the guest's values for that leaf and subleaf, so the table says what CPUID really returns; without
one the table lists the guest's leaves in order, as QEMU builds it for SNP (`sev_snp_cpuid_info_fill`).
"""

from __future__ import annotations

import struct

from .constants import PAGE_SIZE

MAX_ENTRIES = 64
HEADER = struct.Struct("<IIQ")
ENTRY = struct.Struct("<IIQQIIIIQ")          # eax_in, ecx_in, xcr0_in, xss_in, eax, ebx, ecx, edx, reserved
ENTRIES_AT = HEADER.size

# One CPUID leaf as the VMM programs it: (function, index, index matters, eax, ebx, ecx, edx).
Leaf = tuple[int, int, bool, int, int, int, int]


def _lookup(leaves: list[Leaf], function: int, index: int) -> tuple[int, int, int, int]:
    for fn, idx, significant, *regs in leaves:
        if fn == function and (not significant or idx == index):
            return tuple(regs)  # type: ignore[return-value]
    return (0, 0, 0, 0)


def template_entries(template) -> list[tuple[int, int, int, int]] | None:
    """(eax_in, ecx_in, xcr0_in, xss_in) of each template entry; None if the page is no usable template."""
    if template is None or len(template) < PAGE_SIZE:
        return None
    count = HEADER.unpack_from(template, 0)[0]
    if not 1 <= count <= MAX_ENTRIES:
        return None
    return [ENTRY.unpack_from(template, ENTRIES_AT + i * ENTRY.size)[:4] for i in range(count)]


def snp_cpuid_table(template, leaves: list[Leaf]) -> bytes:
    """The 4 KiB CPUID page: the template's entries with the guest's outputs, or the guest's first 64 leaves."""
    inputs = template_entries(template)
    if inputs is None:
        inputs = [(fn, idx if significant else 0, 1 if fn == 0xD else 0, 0)
                  for fn, idx, significant, *_ in leaves[:MAX_ENTRIES]]
    page = bytearray(PAGE_SIZE)
    HEADER.pack_into(page, 0, len(inputs), 0, 0)
    for i, (fn, idx, xcr0_in, xss_in) in enumerate(inputs):
        ENTRY.pack_into(page, ENTRIES_AT + i * ENTRY.size, fn, idx, xcr0_in, xss_in, *_lookup(leaves, fn, idx), 0)
    return bytes(page)


def read_table(page) -> list[tuple[int, int, int, int, int, int]]:
    """(eax_in, ecx_in, eax, ebx, ecx, edx) of each entry (for tests and `igvm plan`)."""
    count = min(HEADER.unpack_from(page, 0)[0], MAX_ENTRIES)
    out = []
    for i in range(count):
        fn, idx, _, _, a, b, c, d, _ = ENTRY.unpack_from(page, ENTRIES_AT + i * ENTRY.size)
        out.append((fn, idx, a, b, c, d))
    return out

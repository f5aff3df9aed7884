"""Function symbols of an ELF image (a vmlinux, a test guest), so `--trace rip` can name where a guest spends time.

Only what symbolisation needs: the section headers, SHT_SYMTAB and its string table. A file without them
(stripped, or not an ELF) simply has no symbols; a malformed one raises LoadError naming the broken part.
"""

from __future__ import annotations

import bisect
import struct

from loaders.errors import LoadError

SHT_SYMTAB = 2
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2


class Symbols:
    """Sorted (address, size, name) of code symbols; lookup(addr) -> 'name+0xoff' or None."""

    def __init__(self, entries: list[tuple[int, int, str]]) -> None:
        self._entries = sorted(entries)
        self._addrs = [e[0] for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, addr: int) -> str | None:
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        start, size, name = self._entries[i]
        if size and addr >= start + size:
            return None
        return f"{name}+{addr - start:#x}"


def elf_symbols(data: bytes) -> Symbols:
    """Symbols of a 64-bit little-endian ELF; empty for anything else or a file without a symbol table."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return Symbols([])
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shoff == 0 or shnum == 0:
        return Symbols([])
    if shentsize < 64 or shoff + shnum * shentsize > len(data):
        raise LoadError(f"ELF section headers at {shoff:#x} ({shnum} x {shentsize} bytes) run past the file's end")

    def section(i: int) -> tuple[int, int, int, int, int]:
        _, kind, _, _, off, size, link, _, _, entsize = struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
        return kind, off, size, link, entsize

    def contents(i: int, off: int, size: int) -> bytes:
        """A section's bytes; only sections read are checked (a .bss, SHT_NOBITS, has a size but no bytes)."""
        if off + size > len(data):
            raise LoadError(f"ELF section {i} at {off:#x}+{size:#x} runs past the file's end")
        return data[off:off + size]

    out: list[tuple[int, int, str]] = []
    for i in range(shnum):
        kind, off, size, link, entsize = section(i)
        if kind != SHT_SYMTAB:
            continue
        if entsize != 24 or link >= shnum:
            raise LoadError(f"ELF symbol table (section {i}) has entry size {entsize} or string table {link}")
        _, stroff, strsize, _, _ = section(link)
        strtab = contents(link, stroff, strsize)
        for name_off, info, _, _, value, sym_size in struct.iter_unpack("<IBBHQQ", contents(i, off, size - size % 24)):
            if info & 0xF not in (STT_FUNC, STT_NOTYPE) or value == 0 or name_off >= strsize:
                continue
            end = strtab.find(b"\0", name_off)
            name = strtab[name_off:end if end >= 0 else strsize].decode("ascii", "replace")
            if name and not name.startswith("$"):
                out.append((value, sym_size, name))
    return Symbols(out)

"""Guest linear -> physical translation by walking the guest's page tables from CR3, as the MMU does: 32-bit
paging (with 4 MiB pages), PAE, 4- and 5-level paging; accessed and dirty bits set; #PF with the CPU's error
code on a missing page or a permission fault (Intel SDM vol. 3 chapter 4)."""

from __future__ import annotations

from loaders.x86 import CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, EFER_LMA, EFER_NXE
from loaders.x86 import PTE_A as A, PTE_ADDR as ADDR_MASK, PTE_D as D, PTE_P as P, PTE_PS as PS, PTE_RW as RW
from loaders.x86 import PTE_US as US, PTE_XD as NX

from .faults import PF, CannotEmulate, GuestFault

ERR_P, ERR_W, ERR_U, ERR_FETCH = 1, 2, 4, 16


class Paging:
    """One instruction's view of guest memory: translates and reads/writes through the GuestMemory RAM."""

    def __init__(self, memory, cr0: int, cr3: int, cr4: int, efer: int, cpl: int) -> None:
        self.memory = memory
        self.cr0, self.cr3, self.cr4, self.efer, self.user = cr0, cr3, cr4, efer, cpl == 3

    def _entry(self, gpa: int, size: int) -> int:
        try:
            return int.from_bytes(self.memory.read(gpa, size), "little")
        except ValueError:
            raise CannotEmulate(f"page-table entry at GPA {gpa:#x} is outside guest RAM") from None

    def _set_bits(self, gpa: int, size: int, old: int, bits: int) -> None:
        if old & bits != bits:
            self.memory.write(gpa, (old | bits).to_bytes(size, "little"))

    def translate(self, linear: int, write: bool = False, fetch: bool = False) -> int:
        """The guest-physical address of `linear`; GuestFault(#PF) as the CPU would raise it."""
        if not self.cr0 & CR0_PG:
            return linear & 0xFFFFFFFF
        err = (ERR_W if write else 0) | (ERR_U if self.user else 0)
        if fetch and self.efer & EFER_NXE:
            err |= ERR_FETCH
        walk: list[tuple[int, int, int]] = []     # (gpa, size, value) of each entry used
        if self.efer & EFER_LMA:
            levels = 5 if self.cr4 & CR4_LA57 else 4
            table, size = self.cr3 & ADDR_MASK, 8
            shifts = [12 + 9 * i for i in range(levels - 1, -1, -1)]
        elif self.cr4 & CR4_PAE:
            linear &= 0xFFFFFFFF
            pdpte_gpa = (self.cr3 & 0xFFFFFFE0) + 8 * (linear >> 30)
            pdpte = self._entry(pdpte_gpa, 8)
            if not pdpte & P:
                raise GuestFault(PF, err, cr2=linear)
            table, size, shifts = pdpte & ADDR_MASK, 8, [21, 12]
        else:
            linear &= 0xFFFFFFFF
            table, size, shifts = self.cr3 & 0xFFFFF000, 4, [22, 12]
        index_bits = 9 if size == 8 else 10
        for level, shift in enumerate(shifts):
            gpa = table + size * ((linear >> shift) & ((1 << index_bits) - 1))
            e = self._entry(gpa, size)
            if not e & P:
                raise GuestFault(PF, err, cr2=linear)
            walk.append((gpa, size, e))
            last = shift == 12
            large = not last and e & PS and (size == 8 and shift in (21, 30) or size == 4 and self.cr4 & CR4_PSE)
            if last or large:
                self._check(walk, write, fetch, err, linear)
                for g, s, v in walk:
                    self._set_bits(g, s, v, A)
                self._set_bits(gpa, size, e | A, A | D if write else A)
                if large and size == 4:       # 4 MiB page: bits 13-20 are physical address bits 32-39
                    base = (e & 0xFFC00000) | ((e >> 13) & 0xFF) << 32
                    return base | (linear & 0x3FFFFF)
                mask = (1 << shift) - 1
                return (e & ADDR_MASK & ~mask) | (linear & mask)
            table = e & (ADDR_MASK if size == 8 else 0xFFFFF000)
        raise AssertionError("unreachable")

    def _check(self, walk, write: bool, fetch: bool, err: int, linear: int) -> None:
        rw = all(v & RW for _, _, v in walk)
        us = all(v & US for _, _, v in walk)
        nx = walk[0][1] == 8 and self.efer & EFER_NXE and any(v & NX for _, _, v in walk)
        if (self.user and not us) or (write and not rw and (self.user or self.cr0 & CR0_WP)) or (fetch and nx):
            raise GuestFault(PF, err | ERR_P, cr2=linear)

    def _pieces(self, linear: int, size: int, write: bool, fetch: bool = False):
        """(gpa, length) pieces of [linear, linear+size), split at page boundaries; every page checked first."""
        pieces = []
        while size:
            n = min(size, 0x1000 - (linear & 0xFFF))
            pieces.append((self.translate(linear, write, fetch), n))
            linear += n
            size -= n
        return pieces

    def read(self, linear: int, size: int, fetch: bool = False) -> bytes:
        out = bytearray()
        for gpa, n in self._pieces(linear, size, False, fetch):
            try:
                out += self.memory.read(gpa, n)
            except ValueError:
                raise CannotEmulate(f"operand at GPA {gpa:#x} is not RAM (MMIO)") from None
        return bytes(out)

    def write(self, linear: int, data: bytes) -> None:
        pieces = self._pieces(linear, len(data), True)
        for gpa, n in pieces:
            if not self.memory.contains(gpa, n):
                raise CannotEmulate(f"operand at GPA {gpa:#x} is not RAM (MMIO)")
        pos = 0
        for gpa, n in pieces:
            self.memory.write(gpa, data[pos:pos + n])
            pos += n

    def fetch(self, linear: int, size: int) -> bytes:
        """Up to `size` instruction bytes; fewer when a later page is not mapped (a decoder that needs them asks
        again, and that fetch raises the #PF)."""
        out = b""
        while len(out) < size:
            at = linear + len(out)
            n = min(size - len(out), 0x1000 - (at & 0xFFF))
            try:
                out += self.memory.read(self.translate(at, fetch=True), n)
            except GuestFault:
                if not out:
                    raise
                break
            except ValueError:
                if not out:
                    raise CannotEmulate(f"code at linear {at:#x} is not in RAM") from None
                break
        return out

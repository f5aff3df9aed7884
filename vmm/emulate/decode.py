"""x86 instruction decoder for the instructions pyvmm finishes when KVM's emulator gives up.

Legacy prefixes, REX, ModRM/SIB (16-, 32- and 64-bit addressing, RIP-relative), segment overrides, operand and
address sizes, per the Intel SDM volume 2 chapter 2. Only the opcodes in vmm.emulate.opcodes are known; anything
else, and any malformed byte string, is a CannotDecode, never another exception (random bytes are a test input).
"""

from __future__ import annotations

from dataclasses import dataclass

from .opcodes import lookup

ES, CS, SS, DS, FS, GS = range(6)
SEG_NAMES = ("es", "cs", "ss", "ds", "fs", "gs")
SEG_PREFIX = {0x26: ES, 0x2E: CS, 0x36: SS, 0x3E: DS, 0x64: FS, 0x65: GS}
RIP = 16                          # base register number meaning "the next instruction's address"
MAX_LENGTH = 15

# (base, index) of the eight 16-bit addressing forms; registers by number (bx=3, bp=5, si=6, di=7).
_MODRM16 = ((3, 6), (3, 7), (5, 6), (5, 7), (6, None), (7, None), (5, None), (3, None))


class CannotDecode(Exception):
    """The bytes are not an instruction this decoder knows. `fault` is "UD" or "GP" when a CPU would raise
    that exception for them (a known opcode in an invalid form, or an over-long instruction); else None."""

    def __init__(self, why: str, fault: str | None = None) -> None:
        super().__init__(why)
        self.fault = fault


class NeedMoreBytes(CannotDecode):
    """The decoder ran past the bytes it was given (the caller may fetch more, or the page after is unmapped)."""


@dataclass(frozen=True, slots=True)
class Reg:
    num: int                      # 0-15, in encoding order (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15)
    size: int                     # bytes


@dataclass(frozen=True, slots=True)
class Mem:
    seg: int                      # ES..GS; the override or the default (SS for rsp/rbp bases)
    base: int | None              # register number, RIP, or None
    index: int | None
    scale: int
    disp: int                     # signed
    disp_size: int                # bytes of displacement in the encoding (0, 1, 2 or 4)
    addr_size: int                # 2, 4 or 8 bytes
    seg_override: bool
    size: int                     # bytes the instruction reads or writes there


@dataclass(frozen=True, slots=True)
class Imm:
    value: int
    size: int


Operand = Reg | Mem | Imm


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction: `operands` in Intel order (destination first)."""
    mnemonic: str
    length: int
    operands: tuple[Operand, ...]
    opsize: int                   # operand size in bytes (2, 4 or 8)
    lock: bool
    rep: int                      # 0, 0xF2 or 0xF3 (the last one given)
    rex_w: bool
    raw: bytes


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> int:
        """The next n bytes as an unsigned little-endian integer."""
        end = self.pos + n
        if end > MAX_LENGTH:
            raise CannotDecode("instruction longer than 15 bytes", "GP")
        if end > len(self.data):
            raise NeedMoreBytes(f"needs more than {len(self.data)} bytes")
        v = int.from_bytes(self.data[self.pos:end], "little")
        self.pos = end
        return v

    def signed(self, n: int) -> int:
        v = self.take(n)
        bits = n * 8
        return v - (1 << bits) if v >> (bits - 1) else v


def decode(data: bytes, mode: int) -> Insn:
    """Decode the instruction at the start of `data` for a CPU in `mode` (16, 32 or 64-bit code).

    Raises CannotDecode (or NeedMoreBytes) for anything else; no other exception for any input.
    """
    if mode not in (16, 32, 64):
        raise CannotDecode(f"unknown CPU mode {mode}")
    cur = _Cursor(bytes(data[:MAX_LENGTH]))
    lock = False
    rep = 0
    seg: int | None = None
    opsize_prefix = addr_prefix = False
    rex = 0
    while True:
        b = cur.take(1)
        if b == 0xF0:
            lock = True
        elif b in (0xF2, 0xF3):
            rep = b
        elif b in SEG_PREFIX:
            seg = SEG_PREFIX[b]
        elif b == 0x66:
            opsize_prefix = True
        elif b == 0x67:
            addr_prefix = True
        else:
            break
        rex = 0
    if mode == 64 and 0x40 <= b <= 0x4F:
        rex = b
        b = cur.take(1)
    if b == 0x0F:
        b = 0x0F00 | cur.take(1)
    rex_w = bool(rex & 8)
    if rex_w:
        opsize = 8
    elif mode == 16:
        opsize = 4 if opsize_prefix else 2
    else:
        opsize = 2 if opsize_prefix else 4
    if mode == 64:
        addr_size = 4 if addr_prefix else 8
    else:
        addr_size = 2 if (mode == 16) != addr_prefix else 4

    entry = lookup(b)
    if entry is None:
        raise CannotDecode(f"opcode {b:#x} is not one pyvmm emulates")
    modrm = cur.take(1) if entry.modrm else None
    form = entry.select(modrm, rep, opsize_prefix, rex_w)
    if form is None:
        raise CannotDecode(f"opcode {b:#x} with ModRM {modrm if modrm is None else hex(modrm)} is not one pyvmm "
                           "emulates")
    if form.ud:
        raise CannotDecode(f"{form.mnemonic}: invalid form", "UD")
    operands: list[Operand] = []
    for kind in form.operands:
        if kind == "rm":
            if modrm >> 6 == 3:
                if form.mem_only:
                    raise CannotDecode(f"{form.mnemonic} needs a memory operand", "UD")
                operands.append(Reg((modrm & 7) | ((rex & 1) << 3), opsize))
            else:
                operands.append(_memory(cur, modrm, rex, addr_size, seg, form.mem_size or opsize, mode))
        elif kind == "reg":
            operands.append(Reg(((modrm >> 3) & 7) | ((rex & 4) << 1), opsize))
        elif kind == "ax16":
            operands.append(Reg(0, 2))
        elif kind == "ib":
            operands.append(Imm(cur.take(1), 1))
    if lock and not form.lockable:
        raise CannotDecode(f"lock {form.mnemonic}", "UD")
    mnemonic = form.mnemonic64 if rex_w and form.mnemonic64 else form.mnemonic
    return Insn(mnemonic, cur.pos, tuple(operands), opsize, lock, rep, rex_w, cur.data[:cur.pos])


def _memory(cur: _Cursor, modrm: int, rex: int, addr_size: int, seg: int | None, size: int, mode: int) -> Mem:
    mod, rm = modrm >> 6, modrm & 7
    index = None
    scale = 1
    if addr_size == 2:
        if mod == 0 and rm == 6:
            base, index, disp_size = None, None, 2
        else:
            base, index = _MODRM16[rm]
            disp_size = (0, 1, 2)[mod]
        default = SS if base == 5 else DS
    else:
        disp_size = (0, 1, 4)[mod]
        if rm == 4:
            sib = cur.take(1)
            scale = 1 << (sib >> 6)
            idx = ((sib >> 3) & 7) | ((rex & 2) << 2)
            index = None if idx == 4 else idx
            base = (sib & 7) | ((rex & 1) << 3)
            if mod == 0 and sib & 7 == 5:
                base, disp_size = None, 4
        elif mod == 0 and rm == 5:
            base, disp_size = (RIP if mode == 64 else None), 4
        else:
            base = rm | ((rex & 1) << 3)
        default = SS if base in (4, 5) else DS
    disp = cur.signed(disp_size) if disp_size else 0
    return Mem(default if seg is None else seg, base, index, scale, disp, disp_size, addr_size, seg is not None, size)

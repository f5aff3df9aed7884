"""The opcode map of vmm.emulate.decode: only the instructions KVM's emulator was seen to give up on (and their
neighbours sharing an opcode), per the Intel SDM volume 2 opcode tables (appendix A)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class Form:
    mnemonic: str
    operands: tuple[str, ...] = ()    # "reg", "rm", "ax16" (the AX register), "ib" (8-bit immediate)
    mem_only: bool = False            # a register in ModRM.rm is #UD
    mem_size: int = 0                 # bytes accessed at a memory operand (0: the operand size)
    lockable: bool = False
    ud: bool = False                  # every encoding of this form is #UD
    mnemonic64: str = ""              # the name with REX.W (cmpxchg16b, xsave64)


@dataclass(frozen=True, slots=True)
class Entry:
    modrm: bool
    select: Callable[[int | None, int, bool, bool], Form | None]   # (modrm, rep, 66 prefix, REX.W) -> form


def _fixed(form: Form) -> Entry:
    return Entry(False, lambda modrm, rep, p66, w: form)


def _by_modrm(table: dict[int, Form]) -> Entry:
    """Forms named by the whole ModRM byte (x87 register forms, 0F 01 Dx)."""
    return Entry(True, lambda modrm, rep, p66, w: table.get(modrm))


def _by_reg_mem(table: dict[int, Form]) -> Entry:
    """Memory forms named by ModRM.reg; register forms (mod 3) are other instructions."""
    return Entry(True, lambda modrm, rep, p66, w: table.get((modrm >> 3) & 7) if modrm >> 6 != 3 else None)


def _bitcount(with_f3: Form, without: Form | None) -> Entry:
    return Entry(True, lambda modrm, rep, p66, w: with_f3 if rep == 0xF3 else without)


def _group9(modrm: int | None, rep: int, p66: bool, w: bool) -> Form | None:
    """0F C7: cmpxchg8b/16b (/1), and the compacted-format XSAVE family (/3 xrstors, /4 xsavec, /5 xsaves)."""
    reg = (modrm >> 3) & 7
    if reg == 1:
        return CMPXCHG16B if w else CMPXCHG8B
    if modrm >> 6 == 3 or rep or p66:
        return None                       # rdrand, rdseed, rdpid, vmptrld...
    return GROUP9_XSAVE.get(reg)


def _xsave_group(modrm: int | None, rep: int, p66: bool, w: bool) -> Form | None:
    if modrm >> 6 == 3 or rep or p66:
        return None                       # fences, rdfsbase, clwb, ptwrite...
    return XSAVE_GROUP.get((modrm >> 3) & 7)


RM_REG = ("reg", "rm")
GROUP9_XSAVE = {3: Form("xrstors", ("rm",), mem_only=True, mem_size=512, mnemonic64="xrstors64"),
                4: Form("xsavec", ("rm",), mem_only=True, mem_size=512, mnemonic64="xsavec64"),
                5: Form("xsaves", ("rm",), mem_only=True, mem_size=512, mnemonic64="xsaves64")}
CMPXCHG8B = Form("cmpxchg8b", ("rm",), mem_only=True, mem_size=8, lockable=True)
CMPXCHG16B = Form("cmpxchg16b", ("rm",), mem_only=True, mem_size=16, lockable=True)
XSAVE_GROUP = {2: Form("ldmxcsr", ("rm",), mem_only=True, mem_size=4),
               3: Form("stmxcsr", ("rm",), mem_only=True, mem_size=4),
               4: Form("xsave", ("rm",), mem_only=True, mem_size=512, mnemonic64="xsave64"),
               5: Form("xrstor", ("rm",), mem_only=True, mem_size=512, mnemonic64="xrstor64"),
               6: Form("xsaveopt", ("rm",), mem_only=True, mem_size=512, mnemonic64="xsaveopt64")}

TABLE: dict[int, Entry] = {
    0xCC: _fixed(Form("int3")),
    0xCD: _fixed(Form("int", ("ib",))),
    0x9B: _fixed(Form("fwait")),
    0xD9: _by_reg_mem({5: Form("fldcw", ("rm",), mem_size=2), 7: Form("fnstcw", ("rm",), mem_size=2)}),
    0xDB: _by_modrm({0xE2: Form("fnclex"), 0xE3: Form("fninit")}),
    0xDD: _by_reg_mem({7: Form("fnstsw", ("rm",), mem_size=2)}),
    0xDF: _by_modrm({0xE0: Form("fnstsw", ("ax16",))}),
    0x0F01: _by_modrm({0xD0: Form("xgetbv"), 0xD1: Form("xsetbv")}),
    0x0FAE: Entry(True, _xsave_group),
    0x0FB8: _bitcount(Form("popcnt", RM_REG), None),
    0x0FBC: _bitcount(Form("tzcnt", RM_REG), Form("bsf", RM_REG)),
    0x0FBD: _bitcount(Form("lzcnt", RM_REG), Form("bsr", RM_REG)),
    0x0FC7: Entry(True, _group9),
}


def lookup(opcode: int) -> Entry | None:
    """The entry for a one-byte opcode or 0x0Fxx two-byte opcode, or None."""
    return TABLE.get(opcode)

"""popcnt, lzcnt, tzcnt (and bsf/bsr, which F3 0F BD/BC are on a CPU without LZCNT/BMI1), flags as the SDM says:
popcnt clears OF SF AF CF PF and sets ZF for a zero source; lzcnt/tzcnt set CF for a zero source and ZF for a zero
result; bsf/bsr set ZF for a zero source and leave the destination unchanged then."""

from __future__ import annotations

from .cpu import AF, CF, OF, PF, SF, ZF, Cpu
from .decode import Insn


def _source(cpu: Cpu, insn: Insn) -> tuple[int, int]:
    return cpu.value(insn.operands[1], insn), insn.opsize * 8


def popcnt(cpu: Cpu, insn: Insn) -> None:
    v, _ = _source(cpu, insn)
    cpu.store(insn.operands[0], insn, v.bit_count())
    cpu.set_flags(OF | SF | ZF | AF | CF | PF, 0 if v else ZF)


def _has(cpu: Cpu, leaf: int, reg: str, bit: int) -> bool:
    e = cpu.cpuid(leaf)
    return e is not None and bool(getattr(e, reg) >> bit & 1)


def lzcnt(cpu: Cpu, insn: Insn) -> str | None:
    if not _has(cpu, 0x80000001, "ecx", 5):       # ABM/LZCNT absent: the CPU runs BSR
        bsr(cpu, insn)
        return "bsr"
    v, bits = _source(cpu, insn)
    n = bits - v.bit_length()
    cpu.store(insn.operands[0], insn, n)
    cpu.set_flags(CF | ZF, (0 if v else CF) | (0 if n else ZF))


def tzcnt(cpu: Cpu, insn: Insn) -> str | None:
    if not _has(cpu, 7, "ebx", 3):                # BMI1 absent: the CPU runs BSF
        bsf(cpu, insn)
        return "bsf"
    v, bits = _source(cpu, insn)
    n = (v & -v).bit_length() - 1 if v else bits
    cpu.store(insn.operands[0], insn, n)
    cpu.set_flags(CF | ZF, (0 if v else CF) | (0 if n else ZF))


def bsf(cpu: Cpu, insn: Insn) -> None:
    v, _ = _source(cpu, insn)
    if v:
        cpu.store(insn.operands[0], insn, (v & -v).bit_length() - 1)
    cpu.set_flags(ZF, 0 if v else ZF)


def bsr(cpu: Cpu, insn: Insn) -> None:
    v, _ = _source(cpu, insn)
    if v:
        cpu.store(insn.operands[0], insn, v.bit_length() - 1)
    cpu.set_flags(ZF, 0 if v else ZF)


HANDLERS = {"popcnt": popcnt, "lzcnt": lzcnt, "tzcnt": tzcnt, "bsf": bsf, "bsr": bsr}

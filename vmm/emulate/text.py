"""AT&T text of a decoded instruction, as GNU objdump prints it: for the log line that names an instruction pyvmm
could not finish, for --trace, and for the tests that compare the decoder with objdump."""

from __future__ import annotations

from .decode import RIP, SEG_NAMES, Imm, Insn, Mem, Reg

_REG64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi")
_REG16 = ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di")


def reg_name(num: int, size: int) -> str:
    if num >= 8:
        return f"r{num}" + {8: "", 4: "d", 2: "w", 1: "b"}[size]
    if size == 8:
        return _REG64[num]
    if size == 4:
        return "e" + _REG16[num]
    return _REG16[num]


def _hex(v: int) -> str:
    return f"-{-v:#x}" if v < 0 else f"{v:#x}"


def operand_text(op: Reg | Mem | Imm) -> str:
    if isinstance(op, Reg):
        return "%" + reg_name(op.num, op.size)
    if isinstance(op, Imm):
        return f"${op.value:#x}"
    seg = f"%{SEG_NAMES[op.seg]}:" if op.seg_override else ""
    if op.base is None and op.index is None:     # objdump: a 16-bit absolute address signed, wider ones not
        return seg + (_hex(op.disp) if op.addr_size == 2 else f"{op.disp & ((1 << (8 * op.addr_size)) - 1):#x}")
    disp = _hex(op.disp) if op.disp_size else ""
    if op.base == RIP:
        base = "%rip" if op.addr_size == 8 else "%eip"
    else:
        base = "" if op.base is None else "%" + reg_name(op.base, op.addr_size)
    if op.addr_size == 2 and op.index is not None:
        return f"{seg}{disp}({base},%{reg_name(op.index, 2)})"
    index = "" if op.index is None else f",%{reg_name(op.index, op.addr_size)},{op.scale}"
    return f"{seg}{disp}({base}{index})"


def insn_text(insn: Insn) -> str:
    """`lock cmpxchg16b (%rsi)`, `popcnt 0x10(%rax,%rbx,4),%ecx`: source operands first, as objdump does."""
    ops = ",".join(operand_text(op) for op in reversed(insn.operands))
    name = ("lock " if insn.lock else "") + insn.mnemonic
    return f"{name} {ops}" if ops else name

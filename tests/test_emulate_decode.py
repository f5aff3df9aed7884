"""The emulator's decoder against GNU as/objdump (an independent oracle): many generated instruction forms are
assembled at test time, disassembled, and every one is decoded from its bytes; mnemonic, operands and length must
match objdump's. Hypothesis feeds random bytes: a clean CannotDecode or an instruction, never another exception."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from vmm.emulate.decode import CannotDecode, NeedMoreBytes, decode
from vmm.emulate.text import insn_text

REGS64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + [f"r{i}" for i in range(8, 16)]
REGS32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] + [f"r{i}d" for i in range(8, 16)]
REGS16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"] + [f"r{i}w" for i in range(8, 16)]
DISPS = [0, 0x7F, -0x80, 0x80, 0x1234, -0x10000, 0x7FFFFFF0]
MODE_ARGS = {64: (["--64"], []), 32: (["--32"], []), 16: (["--32"], ["-M", "i8086"])}


def _mem(rng: random.Random, mode: int, addr: int) -> str:
    """A random memory operand for `addr`-bit addressing."""
    if addr == 16:
        combos = ["(%bx,%si)", "(%bx,%di)", "(%bp,%si)", "(%bp,%di)", "(%si)", "(%di)", "(%bx)", "(%bp)"]
        disp = rng.choice([0, 0x12, -0x7F, 0x1234])
        if rng.random() < 0.1:
            return f"{disp & 0xFFFF:#x}"
        return (f"{disp:#x}" if disp else "") + rng.choice(combos)
    regs = (REGS64 if addr == 64 else REGS32)[:16 if mode == 64 else 8]
    disp = rng.choice(DISPS)
    if mode == 64 and rng.random() < 0.1:
        return f"{disp:#x}(%{'rip' if addr == 64 else 'eip'})"
    base = rng.choice(regs + [None])
    index = rng.choice([r for r in regs if r not in ("rsp", "esp")] + [None])
    if base is None and index is None:
        return f"{disp & ((1 << addr) - 1):#x}"
    inner = ("%" + base if base else "") + (f",%{index},{rng.choice([1, 2, 4, 8])}" if index else "")
    return (f"{disp:#x}" if disp or base is None else "") + f"({inner})"


def _forms(mode: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    nregs = 16 if mode == 64 else 8
    sizes = [REGS16, REGS32] + ([REGS64] if mode == 64 else [])
    segs = ["%fs:", "%gs:"] if mode == 64 else ["%es:", "%cs:", "%ss:", "%ds:", "%fs:", "%gs:"]
    fixed = ["int3", ".byte 0xcd, 3", "int $0x80", "int $0xff", "int $0", "fwait", "fninit", "fnclex",
             "fnstsw %ax", "xgetbv", "xsetbv"]
    out = list(fixed)
    addr_sizes = [64, 32] if mode == 64 else [32, 16]
    for _ in range(count):
        addr = rng.choice(addr_sizes)
        mem = (rng.choice(segs) if rng.random() < 0.2 else "") + _mem(rng, mode, addr)
        prefix = "addr32 " if addr == 32 and mode != 32 else ("addr16 " if addr == 16 and mode == 32 else "")
        kind = rng.randrange(4)
        if kind <= 1:
            name = rng.choice(["popcnt", "lzcnt", "tzcnt", "bsf", "bsr"])
            regs = rng.choice(sizes)
            dst = "%" + regs[rng.randrange(nregs)]
            src = "%" + regs[rng.randrange(nregs)] if kind == 0 else mem
            out.append(f"{prefix if kind else ''}{name} {src},{dst}")
        elif kind == 2:
            name = rng.choice(["fnstsw", "fnstcw", "fldcw", "cmpxchg8b", "lock cmpxchg8b", "xsave", "xrstor",
                               "xsaveopt", "xsavec", "xsaves", "xrstors"]
                              + (["cmpxchg16b", "lock cmpxchg16b", "xsave64", "xrstor64", "xsavec64", "xsaves64",
                                  "xrstors64", "xsaveopt64"] if mode == 64 else []))
            out.append(f"{prefix}{name} {mem}")
        else:
            out.append(f"int ${rng.randrange(4, 256):#x}")
    return out


def _objdump(mode: int, lines: list[str], tmp_path) -> list[tuple[bytes, str]]:
    as_args, od_args = MODE_ARGS[mode]
    src = tmp_path / f"forms{mode}.s"
    src.write_text((".code16\n" if mode == 16 else "") + "".join(f"{line}\nnop\n" for line in lines))
    obj = tmp_path / f"forms{mode}.o"
    made = subprocess.run(["as", *as_args, str(src), "-o", str(obj)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[:2000]
    dump = subprocess.run(["objdump", "-d", "-w", *od_args, str(obj)], check=True, capture_output=True, text=True)
    out = []
    for line in dump.stdout.splitlines():
        m = re.match(r"\s*[0-9a-f]+:\t((?:[0-9a-f]{2} )+)\s*\t(.*)$", line)
        if not m:
            continue
        text = re.sub(r"\s+", " ", m.group(2).split("#")[0]).strip()
        if text != "nop":
            out.append((bytes.fromhex(m.group(1)), text))
    return out


@pytest.mark.skipif(shutil.which("as") is None or shutil.which("objdump") is None, reason="needs GNU binutils")
@pytest.mark.parametrize("mode", [64, 32, 16])
def test_decoder_matches_objdump(mode, tmp_path):
    forms = _forms(mode, 400, seed=mode)
    listing = _objdump(mode, forms, tmp_path)
    assert len(listing) == len(forms)
    for raw, text in listing:
        insn = decode(raw + b"\x90" * 4, mode)   # bytes after the instruction must not change its length
        assert insn.length == len(raw), (raw.hex(), text)
        want = text.replace("addr32 ", "").replace("data16 ", "")
        assert insn_text(insn) == want, (raw.hex(), text)


def test_fault_forms():
    """Encodings a CPU rejects with #UD are reported as such (the emulator injects #UD for them)."""
    for raw in ("0fc7c8", "f0f30fb8c0", "f0cc", "f00fae20"):
        with pytest.raises(CannotDecode) as e:
            decode(bytes.fromhex(raw), 64)
        assert e.value.fault == "UD", raw
    with pytest.raises(CannotDecode) as e:
        decode(b"\x66" * 14 + b"\xf3\x0f\xb8\xc0", 64)
    assert e.value.fault == "GP"
    with pytest.raises(NeedMoreBytes):
        decode(bytes.fromhex("f30fb884"), 64)


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=0, max_size=20), st.sampled_from([16, 32, 64]))
def test_random_bytes_decode_cleanly(data, mode):
    try:
        insn = decode(data, mode)
    except CannotDecode:
        return
    assert 1 <= insn.length <= min(15, len(data))
    assert insn.raw == data[:insn.length]
    insn_text(insn)

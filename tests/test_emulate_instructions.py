"""The emulated instructions against an independent oracle: this host's CPU runs popcnt/lzcnt/tzcnt on the same
values (a helper compiled at test time), and the SDM's rules for faults, page walks and interrupt frames."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from tests.emulate_fakes import FakeMemory, FakeVcpu, injected, place
from vmm.emulate.emulator import emulate, exit_instruction_bytes
from vmm.emulate.faults import CannotEmulate, GuestFault
from vmm.emulate.paging import Paging

ORACLE_C = r"""
#include <stdio.h>
#define OP(insn, m) __asm__ volatile("stc\n" insn " %" m "2, %" m "0\n pushfq\n popq %1" \
                                     : "=&r"(r), "=r"(f) : "r"(v) : "cc")
int main(void) {
    char op[8]; int size; unsigned long long v, r, f;
    while (scanf("%7s %d %llx", op, &size, &v) == 3) {
        r = 0;
        if (op[0] == 'p') { if (size == 2) OP("popcnt", "w"); else if (size == 4) OP("popcnt", "k"); else OP("popcnt", "q"); }
        else if (op[0] == 'l') { if (size == 2) OP("lzcnt", "w"); else if (size == 4) OP("lzcnt", "k"); else OP("lzcnt", "q"); }
        else { if (size == 2) OP("tzcnt", "w"); else if (size == 4) OP("tzcnt", "k"); else OP("tzcnt", "q"); }
        printf("%llx %llx\n", r, f);
    }
    return 0;
}
"""
OPCODES = {"popcnt": 0xB8, "lzcnt": 0xBD, "tzcnt": 0xBC}
DEFINED = {"popcnt": 0x8D5, "lzcnt": 0x41, "tzcnt": 0x41}   # flags the SDM defines for each


def _host_has(flag: str) -> bool:
    try:
        return f" {flag}" in open("/proc/cpuinfo").read()
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("gcc") is None or not (_host_has("abm") and _host_has("bmi1")),
                    reason="needs gcc and a host CPU with LZCNT and BMI1")
def test_bit_counts_match_the_host_cpu(tmp_path):
    src = tmp_path / "oracle.c"
    src.write_text(ORACLE_C)
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "oracle"), str(src)], check=True)
    rng = random.Random(15)
    cases = []
    for name in OPCODES:
        for size in (2, 4, 8):
            top = (1 << (8 * size)) - 1
            for v in [0, 1, top, 1 << (8 * size - 1)] + [rng.getrandbits(8 * size) >> rng.randrange(8 * size)
                                                         for _ in range(40)]:
                cases.append((name, size, v & top))
    out = subprocess.run([str(tmp_path / "oracle")], input="".join(f"{n} {s} {v:x}\n" for n, s, v in cases),
                         capture_output=True, text=True, check=True).stdout.split("\n")
    for (name, size, v), line in zip(cases, out):
        want_r, want_f = (int(x, 16) for x in line.split())
        for memory_operand in (False, True):
            vcpu, mem = FakeVcpu(), FakeMemory()
            vcpu.regs.rbx = 0x5555555555555555
            vcpu.regs.rflags = 0x2 | 0x8D5                     # every defined flag set before
            prefix = b"\x66" if size == 2 else b""
            rex = 0x48 if size == 8 else 0
            if memory_operand:                                  # popcnt 0x100(%rip), %ebx
                code = prefix + b"\xf3" + (bytes([rex]) if rex else b"") + bytes([0x0F, OPCODES[name], 0x1D]) + \
                    struct.pack("<i", 0x100)
                mem.write(0x1000 + len(code) + 0x100, v.to_bytes(size, "little"))
            else:                                               # popcnt %rax, %rbx
                vcpu.regs.rax = v
                code = prefix + b"\xf3" + (bytes([rex]) if rex else b"") + bytes([0x0F, OPCODES[name], 0xD8])
            place(vcpu, mem, code)
            assert emulate(vcpu, mem) == name
            mask = (1 << (8 * size)) - 1
            assert vcpu.regs.rbx & mask == want_r & mask, (name, size, hex(v))
            if size == 4:
                assert vcpu.regs.rbx >> 32 == 0                # a 32-bit result zero-extends
            if size == 2:
                assert vcpu.regs.rbx >> 16 == 0x555555555555   # a 16-bit result merges
            assert vcpu.regs.rflags & DEFINED[name] == want_f & DEFINED[name], (name, size, hex(v))
            assert vcpu.regs.rip == 0x1000 + len(code)


def test_lzcnt_without_the_feature_is_bsr():
    vcpu, mem = FakeVcpu(cpuid={}), FakeMemory()
    vcpu.regs.rax, vcpu.regs.rbx = 0xF0, 99
    place(vcpu, mem, bytes.fromhex("f30fbdd8"))
    assert emulate(vcpu, mem) == "bsr"
    assert vcpu.regs.rbx == 7


def _paged(vcpu: FakeVcpu, mem: FakeMemory, entries: dict[int, tuple[int, int]]) -> None:
    """4-level tables at 0x100000: linear page -> (physical page, flags) with 4 KiB pages, all levels P|RW|US."""
    pml4, pdpt, pd, pt = 0x100000, 0x101000, 0x102000, 0x103000
    mem.write(pml4, struct.pack("<Q", pdpt | 7))
    mem.write(pdpt, struct.pack("<Q", pd | 7))
    mem.write(pd, struct.pack("<Q", pt | 7))
    for linear, (phys, flags) in entries.items():
        mem.write(pt + 8 * (linear >> 12 & 511), struct.pack("<Q", phys | flags))
    vcpu.sregs.cr0 |= 0x80000000
    vcpu.sregs.cr3 = pml4


def test_page_walk_faults_and_accessed_dirty_bits():
    vcpu, mem = FakeVcpu(), FakeMemory()
    _paged(vcpu, mem, {0x1000: (0x1000, 3), 0x5000: (0x9000, 1), 0x6000: (0xA000, 3)})
    vcpu.regs.rsi = 0x7010                                        # not mapped
    place(vcpu, mem, bytes.fromhex("f30fb81e"))                   # popcnt (%rsi), %ebx
    assert emulate(vcpu, mem) == "popcnt #PF"
    assert injected(vcpu) == (14, 0) and vcpu.sregs.cr2 == 0x7010 and vcpu.regs.rip == 0x1000
    vcpu, mem = FakeVcpu(), FakeMemory()
    _paged(vcpu, mem, {0x1000: (0x1000, 3), 0x5000: (0x9000, 1), 0x6000: (0xA000, 3)})
    vcpu.regs.rsi = 0x5008                                        # read-only page, written by cmpxchg8b
    place(vcpu, mem, bytes.fromhex("0fc70e"))
    assert emulate(vcpu, mem) == "cmpxchg8b #PF"
    assert injected(vcpu) == (14, 3)
    vcpu, mem = FakeVcpu(), FakeMemory()
    _paged(vcpu, mem, {0x1000: (0x1000, 3), 0x6000: (0xA000, 3)})
    mem.write(0xA008, struct.pack("<Q", 0x1234))
    vcpu.regs.rsi, vcpu.regs.rax, vcpu.regs.rdx, vcpu.regs.rbx, vcpu.regs.rcx = 0x6008, 0x1234, 0, 7, 8
    place(vcpu, mem, bytes.fromhex("f00fc70e"))                   # lock cmpxchg8b (%rsi): equal
    assert emulate(vcpu, mem) == "cmpxchg8b"
    assert mem.read(0xA008, 8) == struct.pack("<Q", 0x800000007) and vcpu.regs.rflags & 0x40
    pte = struct.unpack("<Q", mem.read(0x103000 + 8 * 6, 8))[0]
    assert pte & 0x60 == 0x60                                     # accessed and dirty


def test_user_and_supervisor_checks():
    mem = FakeMemory()
    mem.write(0x200000, struct.pack("<Q", 0x201000 | 7))          # PML4: user
    mem.write(0x201000, struct.pack("<Q", 0x202000 | 7))
    mem.write(0x202000, struct.pack("<Q", 0x400000 | 0x83))      # 2 MiB supervisor page, writable
    p = Paging(mem, 0x80010001, 0x200000, 0x20, 0x500, cpl=3)
    with pytest.raises(GuestFault) as e:
        p.translate(0x1234)
    assert e.value.error_code == 5 and e.value.cr2 == 0x1234      # present, user
    assert Paging(mem, 0x80010001, 0x200000, 0x20, 0x500, cpl=0).translate(0x1234, write=True) == 0x401234


def test_pae_and_32_bit_paging():
    mem = FakeMemory()
    mem.write(0x300000, struct.pack("<Q", 0x301000 | 1))          # PDPTE 0
    mem.write(0x301000 + 8 * 1, struct.pack("<Q", 0x600000 | 0x83))
    assert Paging(mem, 0x80000001, 0x300000, 0x20, 0, 0).translate(0x212345) == 0x612345
    mem.write(0x310000 + 4 * 1, struct.pack("<I", 0xC00000 | 0x83))    # 4 MiB page (PSE)
    assert Paging(mem, 0x80000001, 0x310000, 0x10, 0, 0).translate(0x412345) == 0xC12345
    mem.write(0x310000 + 4 * 2, struct.pack("<I", 0x320000 | 3))
    mem.write(0x320000 + 4 * 5, struct.pack("<I", 0x7000 | 3))
    assert Paging(mem, 0x80000001, 0x310000, 0x10, 0, 0).translate(0x805123) == 0x7123


def _idt64(mem: FakeMemory, vector: int, handler: int, ist: int = 0, kind: int = 0xE, dpl: int = 0,
           present: int = 1) -> None:
    lo = (handler & 0xFFFF) | 8 << 16 | ist << 32 | kind << 40 | dpl << 45 | present << 47 | (handler >> 16 & 0xFFFF) << 48
    mem.write(0x2000 + 16 * vector, struct.pack("<QQ", lo, handler >> 32))


def _gdt(vcpu: FakeVcpu, mem: FakeMemory) -> None:
    mem.write(0x3000, struct.pack("<3Q", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF))
    vcpu.sregs.gdt.base, vcpu.sregs.gdt.limit = 0x3000, 23
    vcpu.sregs.idt.base, vcpu.sregs.idt.limit = 0x2000, 0xFFF


def test_int3_and_int_n_frames_in_64_bit_mode():
    vcpu, mem = FakeVcpu(), FakeMemory()
    _gdt(vcpu, mem)
    _idt64(mem, 3, 0x5000)
    _idt64(mem, 0x80, 0x6000, ist=1, kind=0xF)
    vcpu.sregs.tr.base = 0x4000
    mem.write(0x4000 + 0x24, struct.pack("<Q", 0x9008))          # IST1
    vcpu.regs.rsp, vcpu.regs.rflags = 0x8008, 0x202 | 0x100          # IF, TF
    place(vcpu, mem, b"\xcc")
    assert emulate(vcpu, mem) == "int3"
    assert vcpu.regs.rip == 0x5000 and vcpu.regs.rsp == 0x8000 - 40
    assert struct.unpack("<5Q", mem.read(0x8000 - 40, 40)) == (0x1001, 8, 0x302, 0x8008, 0x10)
    assert vcpu.regs.rflags & 0x300 == 0                          # interrupt gate: IF and TF cleared
    vcpu.regs.rflags = 0x202
    place(vcpu, mem, b"\xcd\x80", rip=0x1100)
    assert emulate(vcpu, mem) == "int"
    assert vcpu.regs.rip == 0x6000 and vcpu.regs.rsp == 0x9000 - 40 and vcpu.regs.rflags & 0x200   # trap gate
    assert struct.unpack("<Q", mem.read(0x9000 - 40, 8))[0] == 0x1102


def test_int_n_gate_checks():
    vcpu, mem = FakeVcpu(), FakeMemory()
    _gdt(vcpu, mem)
    _idt64(mem, 0x40, 0x5000, present=0)
    _idt64(mem, 0x41, 0x5000, kind=0xC)
    place(vcpu, mem, b"\xcd\x40")
    assert emulate(vcpu, mem) == "int #NP" and injected(vcpu) == (11, 0x40 * 8 + 2)
    place(vcpu, mem, b"\xcd\x41")
    assert emulate(vcpu, mem) == "int #GP" and injected(vcpu) == (13, 0x41 * 8 + 2)
    assert vcpu.regs.rip == 0x1000


def test_int_n_in_real_mode():
    vcpu, mem = FakeVcpu(), FakeMemory()
    s = vcpu.sregs
    s.cr0, s.efer, s.cs.l, s.cs.db = 0x10, 0, 0, 0
    s.cs.selector, s.cs.base, s.ss.base, s.ss.selector = 0x100, 0x1000, 0, 0
    s.idt.base, s.idt.limit = 0, 0x3FF
    mem.write(0x10 * 4, struct.pack("<2H", 0x1234, 0xF000))
    vcpu.regs.rsp, vcpu.regs.rflags = 0x7000, 0x202
    mem.write(0x1000 + 0x20, b"\xcd\x10")
    vcpu.regs.rip = 0x20
    assert emulate(vcpu, mem) == "int"
    assert (vcpu.regs.rip, vcpu.sregs.cs.selector, vcpu.sregs.cs.base) == (0x1234, 0xF000, 0xF0000)
    assert struct.unpack("<3H", mem.read(0x7000 - 6, 6)) == (0x22, 0x100, 0x202)


def test_x87_control_and_xsave_round_trip():
    vcpu, mem = FakeVcpu(), FakeMemory()
    mem.write(0x500, struct.pack("<H", 0x27F))
    place(vcpu, mem, bytes.fromhex("d92c2500050000"))             # fldcw 0x500
    assert emulate(vcpu, mem) == "fldcw"
    assert vcpu.xsave.region[0] | vcpu.xsave.region[1] << 8 == 0x27F and vcpu.xsave.region[512] & 1
    vcpu.regs.rsi, vcpu.regs.rax, vcpu.regs.rdx = 0x4000, 3, 0
    place(vcpu, mem, bytes.fromhex("0fae26"))                     # xsave (%rsi)
    assert emulate(vcpu, mem) == "xsave"
    assert struct.unpack("<H", mem.read(0x4000, 2))[0] == 0x27F and mem.read(0x4000 + 24, 4) == b"\x80\x1f\0\0"
    vcpu.sregs.cr0 |= 8                                           # TS
    place(vcpu, mem, bytes.fromhex("dbe3"))                       # fninit
    assert emulate(vcpu, mem) == "fninit #NM" and injected(vcpu) == (7, 0)
    vcpu.regs.rsi = 0x4020
    vcpu.sregs.cr0 &= ~8
    place(vcpu, mem, bytes.fromhex("0fae2e"))                     # xrstor (%rsi) misaligned
    assert emulate(vcpu, mem) == "xrstor #GP"


def test_unknown_instruction_names_itself():
    vcpu, mem = FakeVcpu(), FakeMemory()
    place(vcpu, mem, bytes.fromhex("f20f38f1d8"))                 # crc32
    with pytest.raises(CannotEmulate, match="f2 0f 38 f1"):
        emulate(vcpu, mem)


def test_instruction_bytes_from_the_exit():
    class Internal:
        ndata = 3
        data = [1, int.from_bytes(bytes([3, 0xF3, 0x0F, 0xB8, 0x90, 0x90, 0x90, 0x90]), "little"), 0]
    assert exit_instruction_bytes(Internal()) == bytes.fromhex("f30fb8")
    Internal.data = [0, 0, 0]
    assert exit_instruction_bytes(Internal()) is None


KNOWN_STARTS = [b"\xf3\x0f\xb8", b"\xf3\x48\x0f\xbd", b"\x66\xf3\x0f\xbc", b"\x0f\xc7", b"\xf0\x48\x0f\xc7",
                b"\xcd", b"\xcc", b"\x0f\xae", b"\x48\x0f\xae", b"\xd9", b"\xdd", b"\xdf\xe0", b"\x0f\x01\xd0",
                b"\x0f\x01\xd1", b"\x9b", b"\xdb\xe3", b"\xdb\xe2", b"\x64\x67\xf3\x0f\xb8"]
CODE = st.one_of(st.binary(min_size=1, max_size=16),
                 st.tuples(st.sampled_from(KNOWN_STARTS), st.binary(max_size=12)).map(lambda t: t[0] + t[1]))


@settings(max_examples=1500, deadline=None)
@given(CODE, st.lists(st.integers(0, (1 << 64) - 1), min_size=16, max_size=16),
       st.sampled_from([64, 32, 16]), st.booleans())
def test_random_instructions_finish_fault_or_refuse(code, gprs, mode, paged):
    """Any bytes with any registers: the emulator finishes, injects a fault, or raises CannotEmulate; never
    another exception (a guest must not crash the VMM)."""
    vcpu, mem = FakeVcpu(), FakeMemory(4 << 20)
    for name, value in zip(("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
                            "r12", "r13", "r14", "r15"), gprs):
        setattr(vcpu.regs, name, value)
    if mode != 64:
        vcpu.sregs.cs.l, vcpu.sregs.cs.db = 0, int(mode == 32)
        vcpu.sregs.efer = 0
    if paged:
        _paged(vcpu, mem, {0x1000: (0x1000, 3)})
    place(vcpu, mem, code)
    try:
        emulate(vcpu, mem)
    except CannotEmulate:
        pass


def test_compacted_xsave_layout_and_restore():
    """xsavec/xsaves write components at the compacted offsets (in bit order after the header, 64-byte aligned
    where CPUID.(0xD,i).ECX[1] says), XCOMP_BV = RFBM | bit 63; xrstors reads them back (SDM vol. 1 13.4.3)."""
    cpuid = {(0xD, 2): {"eax": 256, "ebx": 576}, (0xD, 3): {"eax": 64, "ebx": 960},
             (0xD, 5): {"eax": 64, "ebx": 1088, "ecx": 2}}
    vcpu, mem = FakeVcpu(cpuid=cpuid), FakeMemory()
    vcpu.xcr0 = 0x2F
    vcpu.xsave.region[576:576 + 256] = list(range(256))           # AVX, standard offset
    vcpu.xsave.region[1088:1088 + 64] = [0xA5] * 64               # opmask, standard offset
    vcpu.xsave.region[512] = 0x25                                 # XINUSE: x87, AVX, opmask
    vcpu.regs.rsi, vcpu.regs.rax, vcpu.regs.rdx = 0x4000, 0x25, 0
    place(vcpu, mem, bytes.fromhex("0fc726"))                     # xsavec (%rsi)
    assert emulate(vcpu, mem) == "xsavec"
    assert mem.read(0x4000 + 576, 256) == bytes(range(256))
    assert mem.read(0x4000 + 832, 64) == b"\xa5" * 64            # 576 + 256 = 832, already 64-aligned
    assert struct.unpack("<QQ", mem.read(0x4000 + 512, 16)) == (0x25, 0x25 | 1 << 63)
    mem.write(0x4000 + 832, b"\x5a" * 64)
    mem.write(0x4000 + 512, struct.pack("<Q", 0x21))              # AVX in init state now
    vcpu.regs.rax = 0x27
    place(vcpu, mem, bytes.fromhex("480fc71e"))                   # xrstors64 (%rsi)
    assert emulate(vcpu, mem) == "xrstors64"
    assert bytes(vcpu.xsave.region[1088:1088 + 64]) == b"\x5a" * 64
    assert bytes(vcpu.xsave.region[576:576 + 256]) == bytes(256)  # not in XSTATE_BV: initialized
    assert vcpu.xsave.region[512] & 0x27 == 0x21
    vcpu.sregs.ss.dpl = 3
    place(vcpu, mem, bytes.fromhex("0fc72e"))                     # xsaves at CPL 3
    assert emulate(vcpu, mem) == "xsaves #GP"


def test_ldmxcsr_and_stmxcsr_as_edk2_sec_uses_them():
    """OVMF's SEC: `ldmxcsr 0x1436(%rip)` right after fninit/fldcw (UefiCpuPkg InitializeFloatingPointUnits)."""
    vcpu, mem = FakeVcpu(), FakeMemory()
    code = bytes.fromhex("0fae1536140000")                        # ldmxcsr 0x1436(%rip)
    mem.write(0x1000 + len(code) + 0x1436, struct.pack("<I", 0x9FC0))
    place(vcpu, mem, code)
    assert emulate(vcpu, mem) == "ldmxcsr"
    assert struct.unpack("<I", bytes(vcpu.xsave.region[24:28]))[0] == 0x9FC0 and vcpu.xsave.region[512] & 2
    assert vcpu.regs.rip == 0x1000 + len(code)
    vcpu.regs.rsi = 0x4000
    place(vcpu, mem, bytes.fromhex("0fae1e"))                     # stmxcsr (%rsi)
    assert emulate(vcpu, mem) == "stmxcsr" and mem.read(0x4000, 4) == struct.pack("<I", 0x9FC0)
    mem.write(0x4000, struct.pack("<I", 0x10000))                 # outside MXCSR_MASK (0xFFFF here)
    place(vcpu, mem, bytes.fromhex("0fae16"))                     # ldmxcsr (%rsi)
    assert emulate(vcpu, mem) == "ldmxcsr #GP" and injected(vcpu) == (13, 0)
    vcpu.sregs.cr0 |= 8                                           # TS
    place(vcpu, mem, bytes.fromhex("0fae16"))
    assert emulate(vcpu, mem) == "ldmxcsr #NM"
    vcpu.sregs.cr0 &= ~8
    vcpu.sregs.cr4 &= ~(1 << 9)                                   # no OSFXSR
    place(vcpu, mem, bytes.fromhex("0fae1e"))
    assert emulate(vcpu, mem) == "stmxcsr #UD"

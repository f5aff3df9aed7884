"""The load plan: the plain value every loader returns and the VMM applies (DESIGN.md, "The loader contract").

Nothing here touches KVM; a plan can be printed, compared in a test, or applied to any guest memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

SEGMENT_REGISTERS = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")
GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")


@dataclass(frozen=True)
class Segment:
    """A segment register in the 16-bit attribute form IGVM and Hyper-V use.

    attributes: bits 3:0 type, 4 S, 6:5 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G.
    """
    selector: int
    base: int
    limit: int
    attributes: int

    @property
    def present(self) -> bool:
        return bool(self.attributes & 0x80)


# Architectural reset values (Intel SDM vol. 3, table 10-1) for whatever a plan leaves unset.
RESET_CS = Segment(0xF000, 0xFFFF0000, 0xFFFF, 0x009B)
RESET_DATA = Segment(0, 0, 0xFFFF, 0x0093)
RESET_TR = Segment(0, 0, 0xFFFF, 0x008B)
RESET_LDT = Segment(0, 0, 0xFFFF, 0x0082)


@dataclass
class VpState:
    """Initial register state of one virtual processor; None or absent means 'architectural reset value'."""
    regs: dict[str, int] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    gdtr: tuple[int, int] | None = None  # (base, limit)
    idtr: tuple[int, int] | None = None
    cr0: int | None = None
    cr2: int | None = None
    cr3: int | None = None
    cr4: int | None = None
    efer: int | None = None
    msrs: dict[int, int] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """Deterministic text, one register a line, for `pyvmm igvm plan` and regression diffs."""
        out = [f"{n} = {self.regs[n]:#x}" for n in GPR_NAMES if n in self.regs]
        for n in SEGMENT_REGISTERS:
            s = self.segments.get(n)
            if s is not None:
                out.append(f"{n} = sel {s.selector:#06x} base {s.base:#x} limit {s.limit:#x} attr {s.attributes:#06x}")
        for n in ("gdtr", "idtr"):
            t = getattr(self, n)
            if t is not None:
                out.append(f"{n} = base {t[0]:#x} limit {t[1]:#x}")
        for n in ("cr0", "cr2", "cr3", "cr4", "efer"):
            v = getattr(self, n)
            if v is not None:
                out.append(f"{n} = {v:#x}")
        out += [f"msr {k:#x} = {v:#x}" for k, v in sorted(self.msrs.items())]
        return out


@dataclass(frozen=True)
class MemoryWrite:
    """Bytes that must hold at a GPA when the guest starts (data may be a memoryview into the file)."""
    gpa: int
    data: bytes | bytearray | memoryview
    what: str = ""

    @property
    def end(self) -> int:
        return self.gpa + len(self.data)


@dataclass(frozen=True)
class ZeroRange:
    """Memory that must read as zero (fresh guest RAM already does, but a relaunch must re-zero it)."""
    gpa: int
    size: int
    what: str = ""

    @property
    def end(self) -> int:
        return self.gpa + self.size


@dataclass
class LoadPlan:
    """What memory and registers must hold at start, and what the loader needs from the host."""
    writes: list[MemoryWrite] = field(default_factory=list)
    zeros: list[ZeroRange] = field(default_factory=list)
    vps: dict[int, VpState] = field(default_factory=dict)
    required_memory: list[tuple[int, int]] = field(default_factory=list)  # (gpa, size)

    def describe(self) -> list[str]:
        """Deterministic text of the plan: one line per range (with a hash of its bytes), then registers."""
        items: list[tuple[int, int, str]] = []
        for w in self.writes:
            digest = hashlib.sha256(w.data).hexdigest()[:16]
            items.append((w.gpa, 0, f"write {w.gpa:#012x}-{w.end:#012x} {len(w.data):#x} sha256:{digest} {w.what}".rstrip()))
        for z in self.zeros:
            items.append((z.gpa, 1, f"zero  {z.gpa:#012x}-{z.end:#012x} {z.size:#x} {z.what}".rstrip()))
        out = [t for _, _, t in sorted(items)]
        out += [f"required {g:#012x}-{g + s:#012x}" for g, s in self.required_memory]
        for i in sorted(self.vps):
            out.append(f"vp {i}:")
            out += ["  " + line for line in self.vps[i].describe()]
        return out

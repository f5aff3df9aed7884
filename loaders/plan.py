"""The load plan: the plain value every loader returns and the VMM applies (docs/architecture.md, "The load plan").

Nothing here touches KVM; a plan can be printed, compared in a test, or applied to any guest memory.
"""

from __future__ import annotations

from .record import field, record

SEGMENT_REGISTERS = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")
GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")


def _sha256(data: bytes):
    """hashlib only when a plan is printed (a launch never does)."""
    import hashlib
    return hashlib.sha256(data)


@record(frozen=True)
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


@record
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
    xcr0: int | None = None              # None: KVM's reset value (x87 only)

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
        if self.xcr0 is not None:
            out.append(f"xcr0 = {self.xcr0:#x}")
        return out


@record(frozen=True)
class MemoryWrite:
    """Bytes that must hold at a GPA when the guest starts (data may be a memoryview into the file)."""
    gpa: int
    data: bytes | bytearray | memoryview
    what: str = ""
    # What describe() hashes when the data holds per-launch random bytes (entropy): the data with those masked.
    digest_data: bytes | None = field(default=None, compare=False)

    @property
    def end(self) -> int:
        return self.gpa + len(self.data)


@record(frozen=True)
class ZeroRange:
    """Memory that must read as zero (fresh guest RAM already does, but a relaunch must re-zero it)."""
    gpa: int
    size: int
    what: str = ""

    @property
    def end(self) -> int:
        return self.gpa + self.size


@record
class ParameterRequest:
    """A host-filled parameter area (IGVM PARAMETER_AREA): the loader says what goes where; the VMM fills it.

    usages are (usage name, byte offset) pairs in file order, e.g. ("MEMORY_MAP", 0); gpa is where the area
    is inserted (None if the file never inserts it, which makes it dead weight but not an error).
    """
    index: int
    size: int
    initial: bytes | memoryview | None = None
    usages: list[tuple[str, int]] = field(default_factory=list)
    gpa: int | None = None
    what: str = ""
    # The filled contents (set by the VMM's parameter filler): the written prefix of the area; the bytes from
    # len(data) to size are zero and never allocated (a file's claimed size is not a memory budget).
    data: bytearray | None = None

    @property
    def end(self) -> int:
        return (self.gpa or 0) + self.size

    def describe(self) -> str:
        where = f"{self.gpa:#012x}-{self.end:#012x}" if self.gpa is not None else "(never inserted)"
        if self.data is None:
            digest = "(unfilled)"
        else:   # the written prefix's hash; the rest is zero (hashing a claimed gigabyte of zeros proves nothing)
            digest = f"sha256:{_sha256(self.data).hexdigest()[:16]}"
            if len(self.data) < self.size:
                digest += f" (then zero from +{len(self.data):#x})"
        uses = ", ".join(f"{u}@{o:#x}" for u, o in self.usages) or "no usages"
        return f"param {where} {self.size:#x} {digest} area {self.index}: {uses}"


@record
class LoadPlan:
    """What memory and registers must hold at start, and what the loader needs from the host."""
    writes: list[MemoryWrite] = field(default_factory=list)
    zeros: list[ZeroRange] = field(default_factory=list)
    vps: dict[int, VpState] = field(default_factory=dict)
    required_memory: list[tuple[int, int]] = field(default_factory=list)  # (gpa, size)
    parameters: list[ParameterRequest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)     # what the loader skipped or assumed, for `igvm plan`
    # SEV-SNP CPUID pages of a non-confidential launch: (gpa, the file's template or None); the VMM fills each
    # with the CPUID it gives vCPU 0, in the SNP CPUID table format (loaders/igvm/snp_cpuid.py)
    snp_cpuid_pages: list[tuple[int, bytes | memoryview | None]] = field(default_factory=list)
    hide_sev: bool = False       # the guest must see no SME/SEV in CPUID (an SNP image run without SNP)
    top_ram: int = 0             # bytes of RAM the plan needs mapped just below 4 GiB (a TDX image's reset vector)

    def ranges(self) -> list[tuple[int, int, str]]:
        """Every guest range the plan touches: (gpa, end, what), sorted; inserted parameter areas included."""
        out = [(w.gpa, w.end, w.what or "data") for w in self.writes]
        out += [(z.gpa, z.end, z.what or "zero range") for z in self.zeros]
        out += [(p.gpa, p.end, p.what or f"parameter area {p.index}") for p in self.parameters if p.gpa is not None]
        return sorted(out)

    def check(self, ram: list[tuple[int, int]]) -> None:
        """LoadError for ranges that overlap each other, miss RAM (or fall in a hole), or required memory absent."""
        from .errors import LoadError
        ranges = self.ranges()
        for (a0, a1, aw), (b0, b1, bw) in zip(ranges, ranges[1:]):
            if b0 < a1:
                raise LoadError(f"{bw} at {b0:#x}-{b1:#x} overlaps {aw} at {a0:#x}-{a1:#x}")
        ram_text = ", ".join(f"{g:#x}-{g + s:#x}" for g, s in ram)
        for start, end, what in ranges:
            if not any(g <= start and end <= g + s for g, s in ram):
                raise LoadError(f"{what} at {start:#x}-{end:#x} is not inside guest RAM ({ram_text})")
        for gpa, size in self.required_memory:
            if not any(g <= gpa and gpa + size <= g + s for g, s in ram):
                # more memory helps only where the range reaches past the machine's RAM, not in a hole or a ROM alias
                hint = "; give more memory with -m" if gpa + size > max((g + s for g, s in ram), default=0) else ""
                raise LoadError(f"the file requires RAM at {gpa:#x}-{gpa + size:#x}, which the machine does not have "
                                f"({ram_text}){hint}")

    def describe(self) -> list[str]:
        """Deterministic text of the plan: one line per range (with a hash of its bytes), then registers."""
        items: list[tuple[int, int, str]] = []
        for w in self.writes:
            digest = _sha256(w.data if w.digest_data is None else w.digest_data).hexdigest()[:16]
            items.append((w.gpa, 0, f"write {w.gpa:#012x}-{w.end:#012x} {len(w.data):#x} sha256:{digest} {w.what}".rstrip()))
        for z in self.zeros:
            items.append((z.gpa, 1, f"zero  {z.gpa:#012x}-{z.end:#012x} {z.size:#x} {z.what}".rstrip()))
        for p in self.parameters:
            items.append((p.gpa if p.gpa is not None else 1 << 64, 2, p.describe()))
        out = [t for _, _, t in sorted(items)]
        out += [f"required {g:#012x}-{g + s:#012x}" for g, s in self.required_memory]
        out += [f"snp-cpuid {g:#012x} filled at launch from vCPU 0's CPUID" for g, _ in self.snp_cpuid_pages]
        if self.hide_sev:
            out.append("cpuid 0x8000001f = 0 on every vCPU (no SME/SEV)")
        if self.top_ram:
            out.append(f"ram   {(1 << 32) - self.top_ram:#012x}-0x0100000000 {self.top_ram:#x} mapped below 4 GiB")
        out += [f"note: {n}" for n in self.notes]
        for i in sorted(self.vps):
            out.append(f"vp {i}:")
            out += ["  " + line for line in self.vps[i].describe()]
        return out

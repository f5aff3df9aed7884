"""`pyvmm igvm plan --map`: a picture of guest physical memory as a load plan leaves it, for the terminal.

A bar of the whole address space (RAM, the 32-bit MMIO hole), then bars that zoom into where the plan's
contents crowd together, each one character per equal slice of addresses (so sizes are proportional within a
bar), then one labelled line per region. A cell shows the most specific thing inside its slice: the entry
point over the stack top over the UEFI blob over parameter areas over page data over zero pages over RAM.
Plain ASCII symbols carry the meaning; colour (rich) only helps.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from .memory import MMIO_HOLE_END, MMIO_HOLE_START

# kind -> (symbol, style, legend), most specific first: a cell shows the first kind present in it.
KINDS = {
    "entry": ("E", "bold red", "entry point (vp 0 rip)"),
    "stack": ("S", "bold cyan", "stack top (vp 0 rsp)"),
    "blob": ("U", "magenta", "UEFI config blob"),
    "param": ("P", "yellow", "parameter area"),
    "data": ("#", "green", "page data"),
    "zero": ("z", "white", "zero pages"),
    "mmio": ("M", "blue", "MMIO hole"),
    "ram": (".", "dim", "RAM"),
}
ORDER = list(KINDS)
PAGE = 4096


@dataclass(frozen=True)
class Region:
    start: int
    end: int          # exclusive; start + 1 for a point (entry, stack top)
    kind: str
    label: str


def regions(prepared) -> list[Region]:
    """Everything the picture shows, from the machine's RAM layout and the plan, sorted by address."""
    plan, host = prepared.plan, prepared.host
    out = [Region(g, g + s, "ram", "RAM") for g, s in host.ram]
    out.append(Region(MMIO_HOLE_START, MMIO_HOLE_END, "mmio", "MMIO hole (32-bit PCI, IOAPIC, LAPIC)"))
    for w in plan.writes:
        kind = "blob" if w.what.startswith("UEFI config blob") else "data"
        out.append(Region(w.gpa, w.end, kind, w.what or "data"))
    out += [Region(z.gpa, z.end, "zero", z.what or "zero pages") for z in plan.zeros]
    for p in plan.parameters:
        if p.gpa is not None:
            uses = ", ".join(u for u, _ in p.usages) or "no usages"
            out.append(Region(p.gpa, p.end, "param", f"parameter area {p.index}: {uses}"))
    vp = plan.vps.get(0)
    if vp is not None:
        if "rsp" in vp.regs:
            out.append(Region(vp.regs["rsp"], vp.regs["rsp"] + 1, "stack", "stack top (rsp; grows down)"))
        if "rip" in vp.regs:
            out.append(Region(vp.regs["rip"], vp.regs["rip"] + 1, "entry", "entry point (rip)"))
    return sorted(out, key=lambda r: (r.start, ORDER.index(r.kind)))


def size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _pow2_at_least(n: int) -> int:
    return 1 << max(12, (max(n, 1) - 1).bit_length())


def bar(items: list[Region], start: int, span: int, width: int) -> Text:
    """One character per span/width bytes from start; each cell the most specific kind overlapping it."""
    cells = [" "] * width
    rank = [len(ORDER)] * width
    for r in items:
        if r.end <= start or r.start >= start + span:
            continue
        first = max(0, (r.start - start) * width // span)
        last = min(width - 1, (min(r.end, start + span) - 1 - start) * width // span)
        k = ORDER.index(r.kind)
        for c in range(first, last + 1):
            if k < rank[c]:
                rank[c], cells[c] = k, KINDS[r.kind][0]
    text = Text("|")
    for c in range(width):
        text.append(cells[c], style=KINDS[ORDER[rank[c]]][1] if rank[c] < len(ORDER) else "")
    text.append("|")
    return text


def _scale(start: int, span: int, width: int) -> str:
    """Addresses under a bar: its start, middle and end, where they fit."""
    line = [" "] * (width + 2)
    for pos, addr in ((0, start), (width // 2, start + span // 2), (width + 1, start + span)):
        label = f"{addr:#x}"
        at = min(max(0, pos - len(label) // 2), width + 2 - len(label)) if pos else 0
        if pos == width + 1:
            at = width + 2 - len(label)
        if all(ch == " " for ch in line[max(0, at - 1):at + len(label) + 1]):
            line[at:at + len(label)] = label
    return "".join(line).rstrip()


def _hidden(a: Region, b: Region, start: int, cell: float) -> bool:
    """Whether b (starting at or after a) shares a's last cell while a closer look would tell them apart: a gap
    between them, or two kinds of range (a point such as the entry covers whatever it sits in at any scale)."""
    if int((b.start - start) / cell) > int((a.end - 1 - start) / cell):
        return False
    if b.start > a.end:
        return True
    points = a.end == a.start + 1 or b.end == b.start + 1
    return a.kind != b.kind and not points


def _zooms(items: list[Region], top: int, width: int) -> list[tuple[int, int]]:
    """(start, span) of each bar: the whole space, then the first crowded cluster of plan items, again and again."""
    plan_items = [r for r in items if r.kind not in ("ram", "mmio")]
    levels = [(0, top)]
    while len(levels) < 4 and plan_items:
        start, span = levels[-1]
        cell = span / width
        inside = [r for r in plan_items if start <= r.start < start + span]
        crowded = [(a, b) for a, b in zip(inside, inside[1:]) if _hidden(a, b, start, cell)]
        if not crowded or cell <= PAGE:
            break
        lo = crowded[0][0].start
        hi = max(r.end for r in inside if r.start <= crowded[0][1].start + int(cell))
        size = _pow2_at_least(hi - lo)
        new_start = lo // size * size
        if new_start + size < hi:
            size *= 2
            new_start = lo // size * size
        if size >= span:
            break
        levels.append((new_start, size))
    return levels


def render_map(prepared, console: Console) -> None:
    """Print the picture at the console's width (80 columns and up read well; narrower still works)."""
    items = regions(prepared)
    host = prepared.host
    top = max(MMIO_HOLE_END, max(g + s for g, s in host.ram))
    width = max(16, console.width - 2)
    ram = sum(s for _, s in host.ram)
    console.print(Text(f"guest physical memory of {prepared.path}: {size_text(ram)} RAM, {host.cpus} vCPU(s)",
                       style="bold"))
    for start, span in _zooms(items, top, width):
        console.print(f"{start:#x}-{start + span:#x} ({size_text(span)}), one character = "
                      f"{size_text(max(1, span // width))}:", highlight=False)
        console.print(bar(items, start, span, width))
        console.print(_scale(start, span, width), highlight=False)
    legend = Text()
    for kind, (sym, style, name) in KINDS.items():
        piece = Text.assemble((sym, style), f" {name}")
        if legend.cell_len and legend.cell_len + 2 + piece.cell_len > console.width:
            console.print(legend)
            legend = Text()
        legend.append("  " if legend.cell_len else "")
        legend.append_text(piece)
    console.print(legend)
    console.print()
    for r in items:
        sym, style, _ = KINDS[r.kind]
        where = f"{r.start:#012x}" if r.end == r.start + 1 else f"{r.start:#012x}-{r.end:#012x}"
        size = "" if r.end == r.start + 1 else size_text(r.end - r.start)
        line = Text.assemble((sym, style), f" {where:<25} {size:>9}  {r.label}")
        console.print(line, overflow="fold")

"""`--trace rip`: where the guest spent its time, from RIPs sampled every 20 ms (each vCPU kicked out of KVM_RUN).

A sampling profile of the guest costs nothing when off (the sample is taken on the EINTR path the kick already
takes) and answers the question a slow boot raises: which function is the guest, or the emulator under it, in.
"""

from __future__ import annotations

from collections import Counter

from loaders.elf_symbols import Symbols

TOP = 25


def rip_report(samples: list[list[int]], symbols: Symbols | None = None, top: int = TOP) -> str:
    """Lines for the log: per vCPU the most frequent functions (or RIPs) with their share of the samples."""
    lines = []
    for index, rips in enumerate(samples):
        if not rips:
            lines.append(f"pyvmm: trace: vCPU {index}: no RIP samples")
            continue
        where = Counter()
        for rip in rips:
            name = symbols.lookup(rip) if symbols else None
            where[name.rsplit("+", 1)[0] if name else f"{rip:#x}"] += 1
        lines.append(f"pyvmm: trace: vCPU {index}: {len(rips)} RIP samples, top {min(top, len(where))}:")
        for name, n in where.most_common(top):
            lines.append(f"pyvmm: trace:   {100 * n / len(rips):5.1f}% {n:6d}  {name}")
    return "\n".join(lines)

"""Parsing of the command line's sizes and counts, with QEMU's conventions so users need not relearn them."""

from __future__ import annotations

_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MAX_MEMORY = 1 << 40


def parse_size(text: str) -> int:
    """'256M', '2G', '2GB', '2GiB', '512' (MiB, as QEMU's -m) -> bytes; ValueError with a usable message."""
    t = text.strip().upper()
    for suffix in ("IB", "B"):
        if t.endswith(suffix) and len(t) > len(suffix) and t[-len(suffix) - 1] in "KMGT":
            t = t[:-len(suffix)]
            break
    unit = t[-1:] if t[-1:] in "KMGT" else ""
    number = t[:-1] if unit else t
    try:
        value = float(number) if "." in number else int(number, 10)
    except ValueError:
        raise ValueError(f"memory size {text!r} is not a number with an optional K/M/G/T suffix (e.g. 256M, 2G)") from None
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"memory size {text!r} must be positive")
    if size & 0xFFF:
        raise ValueError(f"memory size {text!r} ({size} bytes) is not a multiple of 4 KiB")
    if size < 2 << 20:
        raise ValueError(f"memory size {text!r} is below the 2 MiB minimum")
    if size > MAX_MEMORY:
        raise ValueError(f"memory size {text!r} is above the 1 TiB maximum")
    return size


def parse_processors(text: str) -> int:
    """A vCPU count in 1..255 (xAPIC ids; the in-kernel irqchip's limit)."""
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError(f"processor count {text!r} is not a whole number") from None
    if not 1 <= n <= 255:
        raise ValueError(f"processor count {n} is outside 1..255")
    return n


def format_size(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"

"""What differs between two load plans, from their text (vmm/plan_text.py): for `pyvmm igvm diff` and snapshots.

A plain line diff of two plans says "this hash changed"; a person wants "the page data at 0x100000 grew by a
page" and "VP_COUNT went from 1 VPs to 2 VPs". `explain` reads both texts into keyed facts (ranges by kind and
GPA, parameters by area and usage, registers by VP and name, the UEFI blob by structure) and says what changed
in each, grouped under "ranges", "parameters", "registers", "uefi blob" and "plan". Lines starting with "# "
(the header naming the file) are not compared.
"""

from __future__ import annotations

import difflib
import re

_RANGE = re.compile(r"^(write|zero) +(0x[0-9a-f]+)-(0x[0-9a-f]+) (0x[0-9a-f]+)(?: sha256:([0-9a-f]+))? ?(.*)$")
_PARAM_AREA = re.compile(r"^param (\S+)(?:-(\S+))? (0x[0-9a-f]+) (\S+) area (\d+): (.*)$")
_PARAMETER = re.compile(r"^parameter (\d+) (\S+)@(0x[0-9a-f]+): (.*)$")
_BLOB_ITEM = re.compile(r"^  ([A-Z_]+|type 0x[0-9a-f]+): (.*)$")
_REG = re.compile(r"^  (\S+(?: 0x[0-9a-f]+)?) = (.*)$")


def compared(lines: list[str]) -> list[str]:
    """The lines a comparison looks at: all but "# " comment lines (the header with the file's name)."""
    return [line for line in lines if not line.startswith("# ")]


def _facts(lines: list[str]) -> dict[str, dict[tuple, str]]:
    """{group: {key: text}} for the groups explain() reports on."""
    out: dict[str, dict[tuple, str]] = {"ranges": {}, "parameters": {}, "registers": {}, "uefi blob": {}, "plan": {}}
    section, vp, seen = "", None, {}
    for line in compared(lines):
        if m := _RANGE.match(line):
            kind, start, end, size, digest, what = m.groups()
            out["ranges"][(kind, int(start, 16))] = (int(end, 16), digest or "", what)
            section = ""
        elif m := _PARAM_AREA.match(line):
            where, end, size, digest, index, uses = m.groups()
            place = f"at {where}-{end}" if end else where
            out["parameters"][("area", int(index))] = f"area {index} {place}, {size} bytes, {digest}: {uses}"
            section = ""
        elif m := _PARAMETER.match(line):
            index, usage, offset, value = m.groups()
            out["parameters"][("value", int(index), usage, offset)] = value
            section = ""
        elif line.startswith("vp ") and line.endswith(":"):
            section, vp = "vp", line[3:-1]
        elif line.startswith("uefi config blob:"):
            section, seen = "blob", {}
            out["uefi blob"][("header",)] = line.partition(": ")[2]
        elif section == "vp" and (m := _REG.match(line)):
            out["registers"][(vp, m.group(1))] = m.group(2)
        elif section == "blob" and (m := _BLOB_ITEM.match(line)):
            name, what = m.groups()
            key = name if name != "ACPI_TABLE" else f"ACPI_TABLE {what.split()[0]}"
            seen[key] = seen.get(key, 0) + 1
            out["uefi blob"][(key, seen[key])] = what
        else:
            section = ""
            head = line.split(" ", 1)[0]
            out["plan"][(head,) if head in ("platform", "machine:") else (line,)] = line.partition(" ")[2]
    return out


def _name(group: str, key: tuple) -> str:
    if group == "parameters":
        return f"parameter area {key[1]}" if key[0] == "area" else f"parameter {key[1]} {key[2]}@{key[3]}"
    if group == "registers":
        return f"vp {key[0]} {key[1]}"
    if group == "uefi blob":
        return "blob header" if key == ("header",) else key[0] + (f" #{key[1]}" if key[1] > 1 else "")
    return key[0].rstrip(":")


def _range_text(kind: str, start: int, fact: tuple[int, str, str]) -> str:
    end, digest, what = fact
    return f"{kind} {start:#x}-{end:#x} ({end - start:#x} bytes{', sha256:' + digest if digest else ''}) {what}".rstrip()


def _range_change(key: tuple[str, int], x: tuple | None, y: tuple | None) -> str:
    """One range that appeared, went, or changed size, contents or label: each change said in words."""
    kind, start = key
    if x is None:
        return f"  added {_range_text(kind, start, y)}"
    if y is None:
        return f"  removed {_range_text(kind, start, x)}"
    what = []
    if x[0] != y[0]:
        delta = (y[0] - x[0])
        what.append(f"{'grew' if delta > 0 else 'shrank'} by {abs(delta):#x} bytes ({abs(delta) / 4096:g} pages): "
                    f"now ends at {y[0]:#x}, was {x[0]:#x}")
    if x[1] != y[1]:
        what.append(f"contents changed (sha256:{x[1]} -> sha256:{y[1]})")
    if x[2] != y[2]:
        what.append(f"label {x[2]!r} -> {y[2]!r}")
    return f"  {kind} at {start:#x} ({y[2] or x[2]}): " + "; ".join(what)


def explain(old: list[str], new: list[str]) -> list[str]:
    """One decoded line per change from `old` to `new`, grouped ("ranges:", "  ..."); [] when they agree."""
    a, b = _facts(old), _facts(new)
    out: list[str] = []
    for group in a:
        lines = []
        for key in sorted(set(a[group]) | set(b[group]), key=repr):
            x, y = a[group].get(key), b[group].get(key)
            if x == y:
                continue
            name = _name(group, key)
            if group == "ranges":
                lines.append(_range_change(key, x, y))
            elif group == "plan" and len(key[0].split()) > 1:
                lines.append(f"  {'only in the first' if y is None else 'only in the second'}: {key[0]}")
            elif x is None:
                lines.append(f"  added {name}: {y}")
            elif y is None:
                lines.append(f"  removed {name}: {x}")
            else:
                lines.append(f"  {name}: {x} -> {y}")
        if lines:
            out.append(f"{group}:")
            out += lines
    return [part for line in out for part in line.split("\n")]


def unified(old: list[str], new: list[str], old_name: str, new_name: str) -> list[str]:
    """A unified diff (-/+ lines) of the compared lines, then explain()'s decoded summary; [] when equal."""
    x, y = compared(old), compared(new)
    if x == y:
        return []
    diff = [line.rstrip("\n") for line in difflib.unified_diff(x, y, old_name, new_name, lineterm="", n=2)]
    return diff + ["", "what changed, decoded:"] + ["  " + line for line in explain(old, new)]


def data_differences(old_plan, new_plan) -> list[str]:
    """For writes at the same GPA in two LoadPlans whose bytes differ: which pages differ and the first byte."""
    out = []
    new_writes = {w.gpa: w for w in new_plan.writes}
    for w in old_plan.writes:
        v = new_writes.get(w.gpa)
        if v is None:
            continue
        x = bytes(w.data if w.digest_data is None else w.digest_data)
        y = bytes(v.data if v.digest_data is None else v.digest_data)
        if x == y:
            continue
        n = min(len(x), len(y))
        first = next((i for i in range(n) if x[i] != y[i]), n)
        pages = sum(1 for p in range(0, max(len(x), len(y)), 4096) if x[p:p + 4096] != y[p:p + 4096])
        total = (max(len(x), len(y)) + 4095) // 4096
        byte = f"{x[first]:#04x} -> {y[first]:#04x}" if first < n else "one is longer"
        out.append(f"  write at {w.gpa:#x} ({w.what or 'data'}): {pages} of {total} pages differ, first byte at "
                   f"GPA {w.gpa + first:#x} (+{first:#x}): {byte}")
    return out

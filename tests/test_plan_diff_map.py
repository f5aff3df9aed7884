"""`pyvmm igvm diff` (what differs between two load plans, exit 0/1/2) and `pyvmm igvm plan --map` (a picture of
guest physical memory that must read at 80 columns)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from vmm.testing import HeaderType, ParamSpec, flat_guest, tiny_guest

ROOT = Path(__file__).resolve().parent.parent
HELLO = str(ROOT / "examples" / "hello-uefi.igvm")
VPS = ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x20000)
MAP = ParamSpec(HeaderType.MEMORY_MAP, 0x21000)


def pyvmm(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmm", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": str(columns), "PYTHONPATH": str(ROOT)})


@pytest.fixture
def files(tmp_path):
    def write(name: str, data: bytes) -> str:
        (tmp_path / name).write_bytes(data)
        return str(tmp_path / name)
    return write


def test_diff_of_equal_plans_is_status_0(files):
    a, b = files("a.igvm", tiny_guest("x\n", params=(VPS,))), files("b.igvm", tiny_guest("x\n", params=(VPS,)))
    p = pyvmm("igvm", "diff", a, b, "-p", "2")
    assert (p.returncode, p.stdout, p.stderr) == (0, f"the load plans of {a} and {b} are equal\n", "")


def test_diff_names_changed_ranges_parameters_and_bytes(files):
    a = files("a.igvm", tiny_guest("hi\n", params=(VPS,)))
    b = files("b.igvm", tiny_guest("ho\n", params=(VPS, MAP)))
    p = pyvmm("igvm", "diff", a, b, "-p", "3", "-m", "256M")
    assert p.returncode == 1, p.stderr
    out = p.stdout
    assert out.startswith(f"--- {a}\n+++ {b}\n")
    assert "\n+param 0x0000021000-0x0000022000 0x1000 sha256:" in out
    assert "\n+parameter 1 MEMORY_MAP@0x0: 0x0-0x10000000 MEMORY\n" in out
    assert "write at 0x100000 (page data (header #8)): contents changed (sha256:" in out
    assert "  added parameter area 1: area 1 0x0000021000-0x0000022000" in out
    assert "  added parameter 1 MEMORY_MAP@0x0: 0x0-0x10000000 MEMORY" in out
    # The message is at +0x27 of the image: "hi" and "ho" differ in the second byte ('i' 0x69, 'o' 0x6f).
    assert "1 of 1 pages differ, first byte at GPA 0x100028 (+0x28): 0x69 -> 0x6f" in out
    assert "parameter 0 VP_COUNT" not in out.split("decoded:")[1]       # unchanged things are not listed


def test_diff_decodes_registers_and_the_uefi_blob(files):
    a = files("a.igvm", flat_guest(b"\xf4", regs={"rbx": 0x10}))
    b = files("b.igvm", flat_guest(b"\xf4", regs={"rbx": 0x1234}))
    p = pyvmm("igvm", "diff", a, b)
    assert p.returncode == 1
    assert "registers:\n    vp 0 rbx: 0x10 -> 0x1234\n" in p.stdout
    p = pyvmm("igvm", "diff", f"type=uefi,path={HELLO}", HELLO)
    assert p.returncode == 1
    assert "uefi blob:\n" in p.stdout and "  removed MEMORY_MAP: 0x0-0x40000000 flags 0x0" in p.stdout
    assert "  removed write 0x709000-0x70a000 (0x1000 bytes, sha256:" in p.stdout
    assert "vp 0 r12: 0x709000 -> 0x0" in p.stdout


@pytest.mark.parametrize("args,words", [
    (["/nonexistent.igvm", HELLO], "cannot read /nonexistent.igvm"),
    ([HELLO], "the following arguments are required: B"),
    ([HELLO, HELLO, "-m", "lots"], "memory size 'lots'"),
    ([HELLO, "type=bogus,path=x"], "unknown type 'bogus'"),
])
def test_diff_bad_input_is_one_line_and_status_2(args, words):
    p = pyvmm("igvm", "diff", *args)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("pyvmm: error: ") and words in p.stderr, p.stderr


def test_diff_of_a_file_that_is_not_igvm_is_status_2(files):
    p = pyvmm("igvm", "diff", HELLO, files("junk.igvm", b"not an igvm file" * 10))
    assert p.returncode == 2 and p.stderr.startswith("pyvmm: error: ") and p.stderr.count("\n") == 1


def bars(out: str) -> list[str]:
    return [line[1:-1] for line in out.splitlines() if line.startswith("|") and line.endswith("|")]


def test_map_fits_80_columns_and_labels_every_region(files):
    path = files("p.igvm", tiny_guest("x\n", params=(VPS, MAP)))
    p = pyvmm("igvm", "plan", "--map", "--igvm", f"type=uefi,path={HELLO}")
    assert p.returncode == 0, p.stderr
    for out in (p.stdout, pyvmm("igvm", "plan", "--map", path, "-m", "6G").stdout):
        assert max(len(line) for line in out.splitlines()) <= 80
        assert all(len(b) == 78 for b in bars(out)) and len(bars(out)) >= 2
        assert "E entry point (vp 0 rip)" in out and "M MMIO hole" in out and ". RAM" in out
    out = p.stdout
    for line in ("# 0x0000001000-0x0000002000     4 KiB  page data (header #1)",
                 "S 0x0000080000                         stack top (rsp; grows down)",
                 "E 0x0000100000                         entry point (rip)",
                 "U 0x0000709000-0x000070a000     4 KiB  UEFI config blob (type=uefi)",
                 "M 0x00c0000000-0x0100000000     1 GiB  MMIO hole (32-bit PCI, IOAPIC, LAPIC)",
                 ". 0x0000000000-0x0040000000     1 GiB  RAM"):
        assert line in out.splitlines(), line


def test_map_is_proportional(files):
    """1 GiB of RAM in a 4 GiB space with the hole at 3-4 GiB: a quarter of the first bar each, nothing between."""
    path = files("p.igvm", tiny_guest("x\n", params=(VPS, MAP)))
    out = pyvmm("igvm", "plan", "--map", path).stdout
    whole = bars(out)[0]
    # 78 cells of 4 GiB / 78: RAM [0, 1 GiB) touches cells 0-19 (cell 0 holds the entry), the hole [3, 4 GiB)
    # cells 58-77 (3 GiB * 78 // 4 GiB = 58).
    assert whole == "E" + "." * 19 + " " * 38 + "M" * 20, whole
    assert "0x0-0x100000000 (4 GiB), one character = 52.5 MiB:" in out
    # A zoomed bar shows the parameter areas (P), the page tables (#), the stack top (S) and the entry (E) in
    # address order, each where its address falls: column = (address - start) * 78 // span.
    zoom = next(b for b in bars(out)[1:] if "P" in b)
    head = next(line for line in out.splitlines()[out.splitlines().index("|" + zoom + "|") - 1:]
                if "one character" in line)
    start, end = (int(x, 16) for x in re.match(r"(0x[0-9a-f]+)-(0x[0-9a-f]+)", head).groups())
    assert zoom[(0x20000 - start) * 78 // (end - start)] == "P"
    assert zoom[(0x80000 - start) * 78 // (end - start)] == "S"
    assert zoom[(0x100000 - start) * 78 // (end - start)] == "E"
    assert zoom.index("P") < zoom.index("S") < zoom.index("E")


PARAM_CHOICES = (VPS, MAP, ParamSpec(HeaderType.COMMAND_LINE, 0x22000), ParamSpec(HeaderType.MADT, 0x23000))
_plans: dict = {}


def _plan(message: str, params: tuple, cpus: int, memory: str, uefi: bool) -> list[str]:
    from vmm.api import plan_text
    key = (message, params, cpus, memory, uefi)
    if key not in _plans:
        _plans[key] = plan_text(tiny_guest(message, params=params), cpus=cpus, memory=memory, cmdline="c",
                                igvm_type="uefi" if uefi else None).splitlines()
    return _plans[key]

options = st.tuples(st.sampled_from(["a\n", "b\n"]),
                    st.sets(st.sampled_from(range(len(PARAM_CHOICES)))).map(
                        lambda s: tuple(PARAM_CHOICES[i] for i in sorted(s))),
                    st.integers(1, 3), st.sampled_from(["64M", "1G", "5G"]), st.booleans())


@settings(max_examples=60, deadline=None)
@given(options, options)
def test_every_difference_between_two_plans_is_explained(x, y):
    """explain() is empty exactly when the compared texts agree, and names each group whose lines differ."""
    from vmm.plan_diff import compared, explain
    a, b = _plan(*x), _plan(*y)
    out = explain(a, b)
    assert (out == []) == (compared(a) == compared(b))
    if x[1] != y[1]:
        assert "parameters:" in out
    if x[4] != y[4]:
        assert "uefi blob:" in out and "registers:" in out        # the blob, and R12 pointing at it
    if x[0] != y[0]:
        assert any("write at 0x100000" in line and "contents changed" in line for line in out)

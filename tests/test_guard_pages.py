"""Guard pages around guest RAM: a host write that strays past a RAM range faults instead of corrupting the VMM.

The bounds-checked accessor (vmm.memory.GuestMemory) refuses every out-of-RAM access first; these tests prove the
second line of defence holds too, by making a deliberate stray write with ctypes in a child process, which must die
of SIGSEGV. The same write one byte inside RAM must succeed, so the test fails if the guard is missing or misplaced.
"""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vmm.memory import GUARD, GiB, GuestMemory, GuestMemoryError

ROOT = Path(__file__).resolve().parents[1]


def _stray_write(size: int, where: str) -> subprocess.CompletedProcess:
    """In a child: map `size` bytes of guest RAM, write one byte inside (prints 'inside ok'), then at `where`
    ('after': just past the last range, 'before': just before the first, 'gap-end': GUARD - 1 bytes past the end)."""
    code = textwrap.dedent(f"""
        import ctypes, sys
        from vmm.memory import GuestMemory, GUARD
        m = GuestMemory({size})
        first, last = m.regions[0].mapping, m.regions[-1].mapping
        ctypes.memset(last.addr + last.size - 1, 0x5A, 1)
        ctypes.memset(first.addr, 0x5A, 1)
        assert m.read(m.regions[-1].end - 1, 1) == b"Z" and m.read(0, 1) == b"Z"
        print("inside ok", flush=True)
        target = {{"after": last.addr + last.size, "before": first.addr - 1,
                   "gap-end": last.addr + last.size + GUARD - 1}}[{where!r}]
        ctypes.memset(target, 0x5A, 1)
        print("stray write landed", flush=True)
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("where", ["after", "before", "gap-end"])
def test_a_stray_host_write_next_to_ram_dies_with_sigsegv(where):
    p = _stray_write(8 << 20, where)
    assert "inside ok" in p.stdout, p.stderr
    assert "stray write landed" not in p.stdout
    assert p.returncode == -signal.SIGSEGV, (p.returncode, p.stderr)


def test_the_guard_also_follows_the_range_above_the_hole():
    """Above 3 GiB RAM splits in two ranges; the high range has its own guards (address space only: nothing is
    touched but two bytes, so this costs no memory)."""
    p = _stray_write(3 * GiB + (4 << 20), "after")
    assert "inside ok" in p.stdout, p.stderr
    assert p.returncode == -signal.SIGSEGV, (p.returncode, p.stderr)


def test_the_accessor_refuses_before_reaching_the_guard():
    """Every range that would touch a guard page is refused by GuestMemory with GuestMemoryError, and nothing in RAM
    changes: the guard is never what stops a guest- or file-supplied address."""
    size = 8 << 20
    with GuestMemory(size) as m:
        m.write(size - 4, b"tail")
        for gpa, n in [(size, 1), (size - 1, 2), (size + GUARD - 1, 1), (-1, 1), (-GUARD, GUARD + 1),
                       (size - 4, 1 << 64), ((1 << 64) - 1, 2)]:
            with pytest.raises(GuestMemoryError):
                m.write(gpa, b"x" * min(n, 16) if n <= 16 else memoryview(bytearray(16)))
            with pytest.raises(GuestMemoryError):
                m.read(gpa, n)
            with pytest.raises(GuestMemoryError):
                m.zero(gpa, n)
            with pytest.raises(GuestMemoryError):
                m.view(gpa, n)
        assert m.read(size - 4, 4) == b"tail"


def test_ram_is_reserved_with_guards_not_committed():
    """The guarded reservation costs address space, not memory: the mapping is readable end to end (zero) and the
    PROT_NONE neighbours show in /proc/self/maps as ---p around the read-write range."""
    with GuestMemory(8 << 20) as m:
        addr, size = m.regions[0].mapping.addr, m.regions[0].size
        maps = Path("/proc/self/maps").read_text().splitlines()
        spans = []
        for line in maps:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            spans.append((lo, hi, line.split()[1]))
        inside = [s for s in spans if s[0] <= addr and addr + size <= s[1]]
        assert inside and inside[0][2].startswith("rw"), inside
        below = [s for s in spans if s[1] == inside[0][0]]
        above = [s for s in spans if s[0] == inside[0][1]]
        assert below and below[0][2].startswith("---") and below[0][1] - below[0][0] >= GUARD
        assert above and above[0][2].startswith("---") and above[0][1] - above[0][0] >= GUARD
        assert m.read(0, 16) == bytes(16)

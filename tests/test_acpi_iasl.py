"""The DSDT and FADT every pyvmm PC gets (`--kernel`/`type=linux` boots and the fw_cfg table loader build them
the same way), checked by an independent oracle: ACPICA's own compiler/disassembler `iasl` (Debian's
acpica-tools), the code Linux's ACPI core is made from.

The DSDT must survive a round trip: `iasl -d` disassembles it with no warning or error, and `iasl -oa` (no
optimisation) compiles the result back to the same AML byte for byte, so every opcode, PkgLength and name is one
ACPICA reads as pyvmm meant. The FADT's PM blocks, as iasl reads them, must be where the machine decodes its PM
registers (a guest using them is in tests/test_run_options.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loaders.acpi import build_dsdt, build_fadt
from vmm.pc_layout import PC

pytestmark = pytest.mark.skipif(shutil.which("iasl") is None, reason="iasl (acpica-tools) not installed")


def _iasl(cwd: Path, *args: str) -> str:
    p = subprocess.run(["iasl", *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    return out


def _disassemble(tmp_path: Path, name: str, table: bytes) -> tuple[str, str]:
    (tmp_path / f"{name}.dat").write_bytes(table)
    log = _iasl(tmp_path, "-d", f"{name}.dat")
    return log, (tmp_path / f"{name}.dsl").read_text()


def _no_complaints(log: str) -> None:
    bad = [line for line in log.splitlines() if re.search(r"warning|error|unknown|incorrect", line, re.I)
           and not re.search(r"\b0 Errors\b", line)]
    assert not bad, log


def test_dsdt_round_trips_through_acpica(tmp_path):
    dsdt = build_dsdt(PC)
    log, dsl = _disassemble(tmp_path, "dsdt", dsdt)
    _no_complaints(log)
    typ = f"0x{PC.s5_slp_typ:02X}"
    assert re.search(rf"Name \(\\_S5, Package \(0x04\)[^{{]*\{{\s*{typ}, \s*{typ},", dsl), dsl
    assert 'Name (_HID, "QEMU0002")' in dsl and f"0x{PC.fw_cfg_port:04X},             // Range Minimum" in dsl
    log = _iasl(tmp_path, "-oa", "-p", "again", "dsdt.dsl")
    assert "0 Errors, 0 Warnings" in log, log
    again = (tmp_path / "again.aml").read_bytes()
    assert again[36:] == dsdt[36:], (again[36:].hex(), dsdt[36:].hex())     # the AML body, header ids aside


def test_broken_aml_is_caught_by_the_round_trip(tmp_path):
    """The oracle can fail: a PkgLength one byte short makes the recompiled AML differ."""
    dsdt = bytearray(build_dsdt(PC))
    i = dsdt.index(b"_S5_") + 4                     # Package opcode 0x12, then its PkgLength
    assert dsdt[i] == 0x12
    dsdt[i + 1] -= 1
    dsdt[9] = (dsdt[9] + 1) & 0xFF                  # keep the checksum right
    _disassemble(tmp_path, "dsdt", bytes(dsdt))
    p = subprocess.run(["iasl", "-oa", "-p", "again", "dsdt.dsl"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=60)
    again = tmp_path / "again.aml"
    assert p.returncode != 0 or not again.exists() or again.read_bytes()[36:] != bytes(dsdt[36:])


def _field(dsl: str, name: str) -> int:
    m = re.search(rf"\]\s+{re.escape(name)} : ([0-9A-F]+)", dsl)
    assert m, (name, dsl)
    return int(m.group(1), 16)


def _gas_address(dsl: str, block: str) -> int:
    m = re.search(rf"\]\s+{re.escape(block)} : \[Generic Address Structure\].*?Address : ([0-9A-F]+)", dsl, re.S)
    assert m, (block, dsl)
    return int(m.group(1), 16)


def test_fadt_pm_blocks_are_where_the_machine_decodes_them(tmp_path):
    dsdt_gpa = 0x15000
    log, dsl = _disassemble(tmp_path, "facp", build_fadt(dsdt_gpa, PC))
    _no_complaints(log)
    base = PC.pm_base
    assert _field(dsl, "DSDT Address") == dsdt_gpa
    assert _field(dsl, "SCI Interrupt") == PC.sci_irq
    assert _field(dsl, "PM1A Event Block Address") == base
    assert _field(dsl, "PM1A Control Block Address") == base + 4
    assert _field(dsl, "PM Timer Block Address") == base + 8
    assert _field(dsl, "GPE0 Block Address") == base + 12
    assert _gas_address(dsl, "PM1A Event Block") == base
    assert _gas_address(dsl, "PM1A Control Block") == base + 4
    assert _gas_address(dsl, "PM Timer Block") == base + 8
    assert _gas_address(dsl, "GPE0 Block") == base + 12
    assert base + 16 <= base + PC.pm_length                  # the registered block covers all four

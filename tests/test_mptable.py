"""The MP table type=linux puts at 0x9FC00: valid checksums, the MADT's machine, and only where the file left room."""

from __future__ import annotations

import struct

import pytest

from loaders.mptable import build_mp_table, mp_table_size
from vmm.pc_layout import PC

MP_FLOATING_GPA = 0x9FC00          # the last KiB below 640 KiB, where Linux's second scan looks


def _parse(blob: bytes, gpa: int = MP_FLOATING_GPA) -> dict:
    assert blob[:4] == b"_MP_" and sum(blob[:16]) & 0xFF == 0
    physptr, length, spec = struct.unpack_from("<IBB", blob, 4)
    assert (length, spec) == (1, 4)
    t = blob[physptr - gpa:]
    sig, size, rev, _, oem, _, _, _, count, lapic = struct.unpack_from("<4sHBB8s12sIHHI", t)
    assert sig == b"PCMP" and rev == 4 and sum(t[:size]) & 0xFF == 0
    out = {"oem": oem, "lapic": lapic, "cpus": [], "ioapics": [], "irqs": {}, "lint": []}
    pos = 44
    for _ in range(count):
        kind = t[pos]
        if kind == 0:
            _, apic, _, flags = struct.unpack_from("<BBBB", t, pos)
            out["cpus"].append((apic, flags))
            pos += 20
        else:
            if kind == 2:
                out["ioapics"].append(struct.unpack_from("<BBBBI", t, pos)[1:])
            elif kind == 3:
                _, _, flags, _, irq, dst, pin = struct.unpack_from("<BBHBBBB", t, pos)
                out["irqs"][irq] = (dst, pin, flags)
            elif kind == 4:
                out["lint"].append(struct.unpack_from("<BBHBBBB", t, pos)[1::5])
            pos += 8
    assert pos == size
    return out


@pytest.mark.parametrize("cpus", [1, 4, 255])
def test_mp_table_describes_the_machine_like_the_madt(cpus):
    blob = build_mp_table(cpus, PC)
    assert len(blob) == mp_table_size(cpus)
    t = _parse(blob)
    assert t["cpus"] == [(0, 3)] + [(i, 1) for i in range(1, cpus)]      # BSP enabled+BP, the rest enabled
    assert t["ioapics"] == [(0, 0x11, 1, 0xFEC00000)] and t["lapic"] == 0xFEE00000
    assert t["irqs"][0][:2] == (0, 2) and 2 not in t["irqs"]                # PIT on pin 2, as the MADT override
    assert t["irqs"][9] == (0, 9, 0x0D) and t["irqs"][4] == (0, 4, 0)       # SCI level/high, COM1 ISA default
    assert t["lint"] == [(3, 0), (1, 1)]                                    # ExtINT on LINT0, NMI on LINT1


def test_type_linux_writes_it_into_the_reserved_low_area(tmp_path, toolchain_ok):
    from tests.linux_images import probe_vmlinux
    from vmm.files import linux_igvm_from_files
    from vmm.igvm_source import IgvmSpec, prepare_igvm
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(probe_vmlinux())
    raw = linux_igvm_from_files(str(kernel), None, "console=ttyS0")
    plan = prepare_igvm(IgvmSpec("k", "linux"), 256 << 20, 3, None, None, raw=raw).plan
    mp = [w for w in plan.writes if w.gpa == MP_FLOATING_GPA]
    assert len(mp) == 1 and len(_parse(mp[0].data)["cpus"]) == 3

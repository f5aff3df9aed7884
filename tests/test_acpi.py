"""ACPI tables for the IGVM parameters: checksums right, parsed back to the topology they describe."""

from hypothesis import given, strategies as st

from loaders.acpi import build_madt, build_pptt, build_slit, build_srat, checksum_ok, parse_table
from vmm.memory import ram_layout
from vmm.pc_layout import PC


@given(st.integers(1, 255))
def test_madt_lists_every_cpu_and_the_kvm_irqchip(cpus):
    raw = build_madt(cpus, PC)
    t = parse_table(raw)
    assert t.signature == "APIC" and t.checksum_ok and t.length == len(raw) and t.revision == 5
    lapics = [e for e in t.entries if e["type"] == "local_apic"]
    assert [(e["apic_id"], e["uid"], e["flags"]) for e in lapics] == [(i, i + 1, 1) for i in range(cpus)]
    assert {"type": "io_apic", "id": 0, "address": 0xFEC00000, "gsi_base": 0} in t.entries
    overrides = {e["source"]: (e["gsi"], e["flags"]) for e in t.entries if e["type"] == "override"}
    assert overrides == {0: (2, 0), 9: (9, 0xD)}
    assert t.fields == {"local_apic_address": 0xFEE00000, "flags": 1}


@given(st.integers(1, 255), st.integers(1, 64 << 10).map(lambda mib: mib << 20))
def test_srat_covers_cpus_and_ram(cpus, memory):
    ram = ram_layout(memory)
    t = parse_table(build_srat(cpus, ram))
    assert t.checksum_ok
    assert [e["apic_id"] for e in t.entries if e["type"] == "apic"] == list(range(cpus))
    assert [(e["base"], e["length"]) for e in t.entries if e["type"] == "memory"] == ram
    assert sum(e["length"] for e in t.entries if e["type"] == "memory") == memory


def test_slit_and_pptt():
    s = parse_table(build_slit(3))
    assert s.checksum_ok and s.fields["matrix"] == [[10, 20, 20], [20, 10, 20], [20, 20, 10]]
    p = parse_table(build_pptt(4))
    assert p.checksum_ok and p.revision == 2
    package, *leaves = p.entries
    assert package["flags"] & 1 and not package["flags"] & 8
    assert [(e["uid"], e["parent"], bool(e["flags"] & 8)) for e in leaves] == [(i + 1, 36, True) for i in range(4)]


def test_checksum_detects_a_flipped_byte():
    raw = bytearray(build_madt(2, PC))
    assert checksum_ok(raw)
    raw[40] ^= 1
    assert not parse_table(raw).checksum_ok

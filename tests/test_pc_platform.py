"""The PC platform edk2's OVMF expects (QEMU's pc machine): PCI conf1 with the i440FX host bridge, PIIX3 ISA bridge
and PIIX4 PM function, the ACPI PM block it decodes, CMOS/RTC, the debug console. Device models on their own
(with hypothesis), then tests/guests/pc_platform.c, which checks them from inside a VM."""

from __future__ import annotations

import calendar
import re
import struct
import time

import pytest
from hypothesis import given, settings, strategies as st

from chipset.acpi_pm import PM_TIMER_HZ, AcpiPm
from chipset.cmos import Cmos, memory_bytes
from chipset.debugcon import DebugCon
from chipset.i440fx import I440fxHost
from chipset.pci import PciConf1
from chipset.piix3 import Piix3Isa
from chipset.piix4_pm import Piix4Pm
from vmm.machine import Outcome
from vmm.pc_layout import PC

MiB, GiB = 1 << 20, 1 << 30


def platform(enabled_at=None):
    maps = []
    pci = PciConf1()
    pci.add(0, 0, I440fxHost())
    pci.add(1, 0, Piix3Isa())
    pci.add(1, 3, Piix4Pm(maps.append, enabled_at=enabled_at))
    return pci, maps


def cfg_read(pci, dev, fn, reg, size):
    pci.address_port.io_write(0, 4, 0x80000000 | dev << 11 | fn << 8 | (reg & 0xFC))
    return pci.data_port.io_read(reg & 3, size)


def cfg_write(pci, dev, fn, reg, size, value):
    pci.address_port.io_write(0, 4, 0x80000000 | dev << 11 | fn << 8 | (reg & 0xFC))
    pci.data_port.io_write(reg & 3, size, value)


# --- PCI ------------------------------------------------------------------------------------------------------
def test_the_functions_ovmf_identifies_the_pc_by():
    pci, _ = platform()
    assert cfg_read(pci, 0, 0, 0, 4) == 0x12378086                 # i440FX: OVMF's "pc" paths
    assert cfg_read(pci, 0, 0, 2, 2) == 0x1237                     # the 16-bit read at 0xCFE SEC does
    assert cfg_read(pci, 0, 0, 8, 4) >> 8 == 0x060000 and cfg_read(pci, 0, 0, 0x3D, 1) == 0
    assert cfg_read(pci, 1, 0, 0, 4) == 0x70008086
    assert cfg_read(pci, 1, 0, 8, 4) >> 8 == 0x060100               # ISA bridge: OVMF's serial console needs it
    assert cfg_read(pci, 1, 0, 0x0E, 1) == 0x80                     # multifunction: function 3 is scanned
    assert cfg_read(pci, 1, 3, 0, 4) == 0x71138086
    assert cfg_read(pci, 1, 3, 8, 4) >> 8 == 0x068000 and cfg_read(pci, 1, 3, 0x3D, 1) == 1
    assert cfg_read(pci, 2, 0, 0, 4) == 0xFFFFFFFF                   # absent: all ones
    assert cfg_read(pci, 1, 1, 0, 2) == 0xFFFF


def test_address_register_reads_back_and_only_dwords_reach_it():
    pci, _ = platform()
    pci.address_port.io_write(0, 4, 0x8000_0804)
    assert pci.address_port.io_read(0, 4) == 0x8000_0804
    pci.address_port.io_write(0, 1, 0)
    assert pci.address_port.io_read(0, 4) == 0x8000_0804
    pci.address_port.io_write(0, 4, 0x0000_0000)                    # enable bit clear: data reads all ones
    assert pci.data_port.io_read(0, 4) == 0xFFFFFFFF


def test_isa_bridge_command_register_keeps_what_is_written_and_ids_do_not():
    pci, _ = platform()
    assert cfg_read(pci, 1, 0, 4, 2) == 0x0007                       # QEMU's reset value
    cfg_write(pci, 1, 0, 4, 2, 0)
    assert cfg_read(pci, 1, 0, 4, 2) == 0
    cfg_write(pci, 1, 0, 4, 2, 0x0003)
    assert cfg_read(pci, 1, 0, 4, 2) & 3 == 3                        # SioBusDxe's condition
    cfg_write(pci, 1, 0, 0, 4, 0)
    assert cfg_read(pci, 1, 0, 0, 4) == 0x70008086
    for i, irq in enumerate((10, 10, 11, 11)):                       # OVMF's PciAcpiInitialization
        cfg_write(pci, 1, 0, 0x60 + i, 1, irq)
    assert pci.functions[8].pirq_routes() == [10, 10, 11, 11]


def test_pm_function_maps_its_block_as_ovmf_programs_it():
    pci, maps = platform()
    assert cfg_read(pci, 1, 3, 0x40, 4) == 0x00000001 and cfg_read(pci, 1, 3, 0x80, 1) == 0
    assert maps == [] or maps == [None]
    pmba = cfg_read(pci, 1, 3, 0x40, 4)                              # AcpiTimerLib: RMW under mask 0xFFC0
    cfg_write(pci, 1, 3, 0x40, 4, (pmba & ~0xFFC0) | 0xB000)
    assert maps[-1:] != [0xB000]                                     # not decoded before PMIOSE
    cfg_write(pci, 1, 3, 0x80, 1, 0x01)
    assert maps[-1] == 0xB000
    assert cfg_read(pci, 1, 3, 0x40, 4) == 0xB001
    cfg_write(pci, 1, 3, 0x40, 4, 0xFFFFFFFF)                        # only bits 15:6 stick
    assert cfg_read(pci, 1, 3, 0x40, 4) == 0xFFC1 and maps[-1] == 0xFFC0
    cfg_write(pci, 1, 3, 0x80, 1, 0)
    assert maps[-1] is None


def test_pm_function_enabled_at_a_base_is_what_firmware_leaves():
    pci, maps = platform(enabled_at=0xB000)
    assert maps == [0xB000]
    assert cfg_read(pci, 1, 3, 0x80, 1) & 1 and cfg_read(pci, 1, 3, 0x40, 4) == 0xB001


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, 3]), st.integers(0, 7), st.integers(0, 255),
                          st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFFFFFF)), max_size=40))
def test_config_space_never_changes_ids_or_breaks(ops):
    pci, maps = platform()
    for dev, fn, reg, size, value in ops:
        reg = reg - reg % size
        cfg_write(pci, dev, fn, reg, size, value)
        got = cfg_read(pci, dev, fn, reg, size)
        assert 0 <= got < 1 << (8 * size)
    assert cfg_read(pci, 0, 0, 0, 4) == 0x12378086 and cfg_read(pci, 1, 0, 0, 4) == 0x70008086
    assert cfg_read(pci, 1, 3, 0, 4) == 0x71138086
    assert all(m is None or (m & 0x3F == 0 and m <= 0xFFC0) for m in maps)


# --- ACPI PM block --------------------------------------------------------------------------------------------
def test_pm_timer_runs_at_3_579545_mhz_and_wraps_at_24_bits():
    now = [0]
    pm = AcpiPm(lambda: None, clock=lambda: now[0])
    now[0] = 1_000_000_000
    assert pm.io_read(8, 4) == PM_TIMER_HZ
    now[0] = 10_000_000_000
    assert pm.io_read(8, 4) == (10 * PM_TIMER_HZ) & 0xFFFFFF


def test_s5_power_off_with_the_machines_sleep_type_only():
    off = []
    pm = AcpiPm(lambda: off.append(1), s5_slp_typ=0)
    pm.io_write(4, 2, (5 << 10) | (1 << 13))                         # S5 as other DSDTs say it: not this machine's
    assert off == []
    cnt = pm.io_read(4, 2)                                           # edk2's ResetShutdown: two RMWs
    pm.io_write(4, 2, cnt & ~(7 << 10))
    pm.io_write(4, 2, pm.io_read(4, 2) | (1 << 13))
    assert off == [1]
    assert pm.io_read(4, 2) & 1                                       # SCI_EN stays


def test_sci_follows_power_button_status_and_enable():
    levels = []
    pm = AcpiPm(lambda: None, sci=levels.append)
    pm.power_button()
    assert levels == []                                              # not enabled
    pm.io_write(2, 2, 1 << 8)                                        # PWRBTN_EN
    assert levels == [1]
    assert pm.io_read(0, 2) & (1 << 8)
    pm.io_write(0, 2, 1 << 8)                                        # write 1 to clear
    assert levels == [1, 0]


def test_timer_status_sets_when_bit_23_flips():
    now = [0]
    pm = AcpiPm(lambda: None, clock=lambda: now[0])
    assert not pm.io_read(0, 2) & 1
    now[0] = (1 << 23) * 1_000_000_000 // PM_TIMER_HZ + 1_000
    assert pm.io_read(0, 2) & 1
    pm.io_write(0, 2, 1)
    assert not pm.io_read(0, 2) & 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFFFFFF)), max_size=30))
def test_pm_block_survives_any_access(ops):
    offs = []
    pm = AcpiPm(lambda: offs.append(1), sci=lambda level: None)
    for off, size, value in ops:
        pm.io_write(off, size, value)
        assert 0 <= pm.io_read(off, size) < 1 << 32
    assert pm.io_read(4, 2) & 1


# --- CMOS / RTC -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("below,above,expect", [
    (64 * MiB, 0, {0x15: 0x80, 0x16: 0x02, 0x17: 0x00, 0x18: 0xFC, 0x30: 0x00, 0x31: 0xFC, 0x34: 0x00, 0x35: 0x03,
                   0x5B: 0, 0x5C: 0, 0x5D: 0}),
    (3 * GiB, 5 * GiB, {0x17: 0xFF, 0x18: 0xFF, 0x34: 0x00, 0x35: 0xBF, 0x5B: 0x00, 0x5C: 0x40, 0x5D: 0x01}),   # 0x14000
    (8 * MiB, 0, {0x17: 0x00, 0x18: 0x1C, 0x34: 0, 0x35: 0}),
])
def test_cmos_memory_bytes_are_qemus(below, above, expect):
    got = memory_bytes(below, above, 1)
    assert {k: got[k] for k in expect} == expect


def test_rtc_reads_host_utc_in_bcd_and_keeps_what_the_guest_sets():
    now = [calendar.timegm((2026, 12, 6, 5, 59, 58, 0, 0, 0))]
    c = Cmos(64 * MiB, 0, 2, clock=lambda: now[0])

    def reg(r):
        c.io_write(0, 1, r | 0x80)                                   # NMI bit set, as edk2's PcRtc sends it
        return c.io_read(1, 1)
    assert [reg(r) for r in (0x09, 0x08, 0x07, 0x04, 0x02, 0x00, 0x32)] == [0x26, 0x12, 0x06, 0x05, 0x59, 0x58, 0x20]
    assert reg(0x0D) == 0x80 and not reg(0x0A) & 0x80 and reg(0x0F) == 0 and reg(0x0B) == 0x02
    assert reg(0x5F) == 1 and c.io_read(0, 1) == 0xFF
    c.io_write(0, 1, 0x0B); c.io_write(1, 1, 0x82)                   # SET, then the time bytes, then run
    for r, v in ((0x09, 0x30), (0x08, 0x01), (0x07, 0x02), (0x04, 0x03), (0x02, 0x04), (0x00, 0x05)):
        c.io_write(0, 1, r); c.io_write(1, 1, v)
    c.io_write(0, 1, 0x0B); c.io_write(1, 1, 0x02)
    now[0] += 10
    assert [reg(r) for r in (0x09, 0x08, 0x07, 0x04, 0x02, 0x00)] == [0x30, 0x01, 0x02, 0x03, 0x04, 0x15]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 255)), max_size=60))
def test_cmos_survives_any_byte_sequence(ops):
    c = Cmos(64 * MiB, 0, 1, clock=lambda: 1.8e9)
    for port, value in ops:
        c.io_write(port, 1, value)
        assert 0 <= c.io_read(port, 1) <= 0xFF
    c.io_write(0, 1, 0x0D)
    assert c.io_read(1, 1) == 0x80


def test_debugcon_answers_the_bochs_magic_and_passes_bytes():
    out = []
    d = DebugCon(out.append)
    assert d.io_read(0, 1) == 0xE9
    d.io_write(0, 1, ord("A"))
    d.io_write_string(0, 1, b"BC")
    assert b"".join(out) == b"ABC"


# --- from inside a guest --------------------------------------------------------------------------------------
def facts(text: str) -> dict[str, int]:
    return {m[1]: int(m[2], 16) for m in re.finditer(r"^(\w+)=0x([0-9a-f]+)$", text, re.M)}


def test_guest_sees_the_pc_platform(guest):
    memory = 3 * GiB + 64 * MiB
    started = time.time()
    r = guest("start64.S", extra_sources=("pc_platform.c",), memory=memory, timeout=60)
    assert r.status == (0x10 << 1) | 1, r.text
    f = facts(r.text)
    assert f["cf8_readback"] == 0x12345678
    assert (f["host_vid"], f["host_did"], f["host_pin"]) == (0x8086, 0x1237, 0)
    assert (f["isa_id"], f["isa_class"], f["isa_header"], f["isa_command"]) == (0x70008086, 0x060100, 0x80, 3)
    assert (f["pm_id"], f["absent"]) == (0x71138086, 0xFFFFFFFF)
    assert (f["pmba"], f["pmregmisc"]) == (PC.pm_base | 1, 1)       # a direct boot: enabled where the FADT says
    # two RTC seconds of PM ticks; the slack is how late a descheduled guest may see a second change on a loaded
    # host, far below what a wrong rate gives (a 1.19 MHz PIT rate, a ms count: off by 66 % and more)
    assert abs(f["pm_ticks_2s"] - 2 * PM_TIMER_HZ) < 0.1 * 2 * PM_TIMER_HZ, f["pm_ticks_2s"]
    assert f["pm_timer_high"] == 0
    cmos = {int(m[1], 16): int(m[2], 16) for m in re.finditer(r"^cmos0x(\w+)=0x(\w+)$", r.text, re.M)}
    assert (cmos[0x0A] & 0x80, cmos[0x0D], cmos[0x0F]) == (0, 0x80, 0)
    assert [cmos[k] for k in (0x34, 0x35, 0x5B, 0x5C, 0x5D)] == [0x00, 0xBF, 0x00, 0x04, 0x00]
    assert [cmos[k] for k in (0x15, 0x16, 0x17, 0x18, 0x30, 0x31)] == [0x80, 0x02, 0xFF, 0xFF, 0xFF, 0xFF]
    t = time.gmtime(started)
    bcd = lambda v: (v >> 4) * 10 + (v & 15)  # noqa: E731
    assert (bcd(cmos[0x32]) * 100 + bcd(cmos[0x09]), bcd(cmos[0x08])) == (t.tm_year, t.tm_mon)
    assert (f["port70"], f["unassigned_port"], f["unassigned_mmio"]) == (0xFF, 0xFFFFFFFF, 0xFFFFFFFF)


@pytest.mark.parametrize("action,outcome,why", [(1, Outcome.POWEROFF, "S5"), (2, Outcome.RESET, "reset"),
                                                (3, Outcome.POWEROFF, "S5")])
def test_guest_powers_off_and_resets_through_the_platform(guest, action, outcome, why):
    r = guest("start64.S", extra_sources=("pc_platform.c",), defines={"ACTION": action, "MEASURE_TIMER": 0})
    assert r.result.outcome is outcome, (r.result, r.text)
    assert r.status == 0 and why in r.result.message
    if action == 3:
        assert facts(r.text)["old_block"] == 0xFFFF                  # the block left its old base

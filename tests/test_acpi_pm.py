"""The ACPI fixed hardware (chipset/acpi_pm.py) through the port bus, as a guest reaches it: the PM timer counts
at 3.579545 MHz in 24 bits, PM1 status is write-1-to-clear, SCI_EN stays set, SLP_EN with the machine's S5 sleep type powers off
(ACPI 6.5 sections 4.8.3.1-4.8.3.3). A guest using it from the FADT is in tests/test_run_options.py."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from chipset.acpi_pm import PM_LENGTH, AcpiPm
from chipset.bus import PortBus

BASE = 0x400                  # any base: the device sees offsets
EVT_STS, EVT_EN, CNT, TMR, GPE0 = 0, 2, 4, 8, 12


class Pm:
    """An AcpiPm on a bus with a settable clock; counts power-offs."""

    def __init__(self, s5: int = 0) -> None:
        self.now_ns = 0
        self.poweroffs = 0
        self.dev = AcpiPm(self._off, clock=lambda: self.now_ns, s5_slp_typ=s5)
        self.bus = PortBus()
        self.bus.register(BASE, PM_LENGTH, self.dev, "ACPI PM")

    def _off(self) -> None:
        self.poweroffs += 1

    def read(self, off: int, size: int) -> int:
        buf = memoryview(bytearray(size))
        self.bus.pio(BASE + off, size, 1, False, buf)
        return int.from_bytes(buf, "little")

    def write(self, off: int, size: int, value: int) -> None:
        self.bus.pio(BASE + off, size, 1, True, memoryview(bytearray(value.to_bytes(size, "little"))))


def test_pm_timer_counts_3579545_per_second_in_24_bits():
    pm = Pm()
    pm.now_ns = 1_000_000_000
    assert pm.read(TMR, 4) == 3_579_545
    pm.now_ns = 2_000_000_000 + 279                       # a tick is 279.4 ns: not yet
    assert pm.read(TMR, 4) == 7_159_090
    pm.now_ns += 1
    assert pm.read(TMR, 4) == 7_159_091
    pm.now_ns = (1 << 24) * 1_000_000_000 // 3_579_545 + 1_000   # just past the 24-bit wrap
    assert pm.read(TMR, 4) < 10
    pm.now_ns = 1_000_000_000
    assert (pm.read(TMR, 1), pm.read(TMR + 1, 1), pm.read(TMR + 2, 1), pm.read(TMR + 3, 1)) == (0x99, 0x9E, 0x36, 0)
    assert pm.read(TMR, 2) == 0x9E99


def test_pm_timer_ignores_writes():
    pm = Pm()
    pm.now_ns = 5_000_000
    before = pm.read(TMR, 4)
    pm.write(TMR, 4, 0)
    pm.write(TMR + 1, 1, 0xFF)
    assert pm.read(TMR, 4) == before


def test_sci_en_is_always_set_and_pm1_enable_holds_what_is_written():
    pm = Pm()
    assert pm.read(CNT, 2) & 1
    pm.write(CNT, 2, 0)
    assert pm.read(CNT, 2) == 1
    pm.write(EVT_EN, 2, 0x0121)                           # TMR_EN, PWRBTN_EN, RTC_EN
    assert pm.read(EVT_EN, 2) == 0x0121
    pm.write(GPE0, 4, 0x12345678)
    assert pm.read(GPE0, 4) == 0x12345678


def test_pm1_status_is_write_one_to_clear():
    pm = Pm()
    pm.dev.regs[EVT_STS:EVT_STS + 2] = (0x0101).to_bytes(2, "little")    # TMR_STS and PWRBTN_STS pending
    pm.write(EVT_STS, 2, 0xFFFF)                          # ones clear, they do not set
    assert pm.read(EVT_STS, 2) == 0
    pm.dev.regs[EVT_STS:EVT_STS + 2] = (0x0101).to_bytes(2, "little")
    pm.write(EVT_STS, 2, 0x0100)                          # only the bit written as 1
    assert pm.read(EVT_STS, 2) == 0x0001
    pm.write(EVT_STS, 4, 0x0121_0001)                     # a 4-byte write also reaches PM1 enable
    assert (pm.read(EVT_STS, 2), pm.read(EVT_EN, 2)) == (0, 0x0121)


@pytest.mark.parametrize("s5", [0, 5])          # QEMU's DSDT (and pyvmm's) say 0; other firmware's tables say 5
def test_the_machines_s5_slp_typ_with_slp_en_powers_off_and_nothing_else_does(s5):
    pm = Pm(s5)
    other = 5 if s5 == 0 else 0
    pm.write(CNT, 2, s5 << 10)                            # S5 chosen, SLP_EN not written: nothing yet
    pm.write(CNT, 2, (other << 10) | 1 << 13)             # another sleep type with SLP_EN: not a power-off
    pm.write(CNT, 2, (1 << 10) | 1 << 13)                 # S1: not supported, not a power-off
    assert pm.poweroffs == 0
    pm.write(CNT, 2, (s5 << 10) | 1 << 13)
    assert pm.poweroffs == 1
    assert pm.read(CNT, 2) & (1 << 13) == 0               # SLP_EN is write-only: reads 0
    pm.write(CNT + 1, 1, ((s5 << 10) | 1 << 13) >> 8)     # the high byte alone, as a byte-wide OS might
    assert pm.poweroffs == 2


@given(st.lists(st.tuples(st.integers(0, PM_LENGTH - 1), st.sampled_from([1, 2, 4]), st.integers(0, 2**32 - 1)),
                max_size=40))
def test_any_writes_keep_the_invariants(writes):
    pm = Pm()
    pm.now_ns = 123_456_789
    timer = pm.read(TMR, 4)
    for off, size, value in writes:
        pm.write(off, size, value & ((1 << (8 * size)) - 1))
        assert pm.read(CNT, 2) & 1 and not pm.read(CNT, 2) & (1 << 13)
        assert pm.read(TMR, 4) == timer
        for o in range(PM_LENGTH):
            assert 0 <= pm.read(o, 1) <= 0xFF

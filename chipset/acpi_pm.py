"""ACPI fixed-hardware registers: PM1a event (+0: status, +2: enable), PM1a control (+4), PM timer (+8), GPE0
(+12), at the base the PIIX4 PM function decodes them (chipset/piix4_pm.py) and the FADT describes.

As QEMU's hw/acpi/core.c: the timer is a free-running 24-bit count at 3.579545 MHz derived from host monotonic
time (never from exit counts, so a firmware's delay loops last the same wall time on a slow host); SLP_EN with
SLP_TYP equal to the machine's S5 value (the DSDT's \\_S5; QEMU's, and what edk2's ResetShutdown writes, is 0)
powers off. The SCI is level-triggered: asserted while SCI_EN and a status bit whose enable bit is set
(TMR_STS when bit 23 of the timer has flipped since it was last cleared, PWRBTN_STS from power_button()).
"""

from __future__ import annotations

import time
from collections.abc import Callable

PM_LENGTH = 0x10
SLP_EN = 1 << 13
SCI_EN = 1
TMR_STS = 1 << 0
PWRBTN_STS = 1 << 8
WAK_STS = 1 << 15
PM_TIMER_HZ = 3_579_545
TIMER_MSB = 1 << 23


class AcpiPm:
    """PM1 status/enable, PM1 control (SCI_EN always set: there is no SMI to switch modes), 24-bit PM timer."""

    def __init__(self, poweroff: Callable[[], None], clock: Callable[[], int] = time.monotonic_ns,
                 s5_slp_typ: int = 0, sci: Callable[[int], None] | None = None) -> None:
        self.poweroff = poweroff
        self.clock = clock
        self.s5 = s5_slp_typ
        self.sci = sci
        self.sci_level = 0
        self.regs = bytearray(PM_LENGTH)
        self.regs[4] = SCI_EN
        self._tmr_period = self._ticks() // TIMER_MSB      # the timer's bit-23 period at the last TMR_STS clear

    def _ticks(self) -> int:
        return self.clock() * PM_TIMER_HZ // 1_000_000_000

    def _status(self) -> int:
        sts = self.regs[0] | self.regs[1] << 8
        if not sts & TMR_STS and self._ticks() // TIMER_MSB != self._tmr_period:
            sts |= TMR_STS
            self.regs[0] |= TMR_STS
        return sts

    def _update_sci(self) -> None:
        enable = self.regs[2] | self.regs[3] << 8
        level = int(bool(self.regs[4] & SCI_EN and self._status() & enable & (TMR_STS | PWRBTN_STS)))
        if level != self.sci_level:
            self.sci_level = level
            if self.sci is not None:
                self.sci(level)

    def power_button(self) -> None:
        """The host pressed the power button (QEMU's system_powerdown): PWRBTN_STS, an SCI if enabled."""
        self.regs[1] |= PWRBTN_STS >> 8
        self._update_sci()

    def io_read(self, offset: int, size: int) -> int:
        if 8 <= offset < 12:
            return (self._ticks() & 0xFFFFFF) >> ((offset - 8) * 8)
        if offset < 2:
            self._status()
        return int.from_bytes(self.regs[offset:offset + size], "little")

    def io_write(self, offset: int, size: int, value: int) -> None:
        if 8 <= offset < 12:
            return                                   # the timer is read-only
        raw = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        end = min(offset + size, PM_LENGTH)
        if offset < 2:                               # PM1 status: write 1 to clear
            self._status()
            for i in range(offset, min(end, 2)):
                self.regs[i] &= ~raw[i - offset] & 0xFF
            if not self.regs[0] & TMR_STS:
                self._tmr_period = self._ticks() // TIMER_MSB
            raw = raw[max(0, 2 - offset):]
            offset = max(offset, 2)
        self.regs[offset:end] = raw[:end - offset]
        self.regs[4] |= SCI_EN
        cnt = int.from_bytes(self.regs[4:6], "little")
        if cnt & SLP_EN:
            self.regs[5] &= ~(SLP_EN >> 8) & 0xFF
            if (cnt >> 10) & 7 == self.s5:
                self.poweroff()
        self._update_sci()

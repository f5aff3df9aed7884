"""ACPI fixed-hardware registers: PM1a event (+0), PM1a control (+4), PM timer (+8), GPE0 (+12) from the PM base
the machine registers them at, as the FADT pyvmm builds describes them. Writing SLP_TYP=S5 with SLP_EN powers the
machine off."""

from __future__ import annotations

import time
from collections.abc import Callable

PM_LENGTH = 0x10
SLP_TYP_S5 = 5                      # the value the DSDT's \\_S5 package gives
SLP_EN = 1 << 13
SCI_EN = 1
PM_TIMER_HZ = 3_579_545


class AcpiPm:
    """PM1 status/enable, PM1 control (SCI_EN always set: there is no SMI to switch modes), 24-bit PM timer."""

    def __init__(self, poweroff: Callable[[], None], clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.poweroff = poweroff
        self.clock = clock
        self.regs = bytearray(PM_LENGTH)
        self.regs[4] = SCI_EN

    def _timer(self) -> int:
        return (self.clock() * PM_TIMER_HZ // 1_000_000_000) & 0xFFFFFF

    def io_read(self, offset: int, size: int) -> int:
        if 8 <= offset < 12:
            return self._timer() >> ((offset - 8) * 8)
        return int.from_bytes(self.regs[offset:offset + size], "little")

    def io_write(self, offset: int, size: int, value: int) -> None:
        if 8 <= offset < 12:
            return                                   # the timer is read-only
        raw = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        end = min(offset + size, PM_LENGTH)
        if offset < 2:                               # PM1 status: write 1 to clear
            for i in range(offset, min(end, 2)):
                self.regs[i] &= ~raw[i - offset] & 0xFF
            raw = raw[max(0, 2 - offset):]
            offset = max(offset, 2)
        self.regs[offset:end] = raw[:end - offset]
        self.regs[4] |= SCI_EN
        cnt = int.from_bytes(self.regs[4:6], "little")
        if cnt & SLP_EN:
            self.regs[5] &= ~(SLP_EN >> 8) & 0xFF
            if (cnt >> 10) & 7 == SLP_TYP_S5:
                self.poweroff()

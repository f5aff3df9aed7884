"""The MC146818 RTC and CMOS RAM at ports 0x70 (index) / 0x71 (data), as QEMU's hw/rtc/mc146818rtc.c presents it.

- The index port keeps bits 6:0 (bit 7 is the NMI mask) and reads back 0xFF, as on QEMU; edk2's PcRtc writes
  index | (old & 0x80), so every index it sends has bit 7 set.
- The clock is the host's UTC plus an offset the guest sets (register B SET, then the time bytes): BCD or binary
  and 12/24-hour per register B, the century at 0x32. Register A reads UIP clear, D reads VRT (valid RAM), C
  reads (and clears) no pending interrupt: the RTC raises none.
- Register 0x0F (shutdown status) is 0 at power-on, so edk2's SEC never takes a cold boot for an S3 resume.
- The memory-size bytes are QEMU's (hw/i386/pc.c pc_cmos_init, pc_cmos_init_late), the fallback edk2's
  PlatformInitLib/MemDetect.c reads without etc/e820: 0x15/0x16 base memory in KiB, 0x17/0x18 and 0x30/0x31
  KiB above 1 MiB (at most 65535), 0x34/0x35 64 KiB units above 16 MiB below 4 GiB, 0x5B-0x5D 64 KiB units
  above 4 GiB, 0x5F the processor count minus one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REG_A, REG_B, REG_C, REG_D, SHUTDOWN, CENTURY = 0x0A, 0x0B, 0x0C, 0x0D, 0x0F, 0x32
A_UIP, B_SET, B_24H, B_BINARY, D_VRT = 0x80, 0x80, 0x02, 0x04, 0x80
SECONDS, MINUTES, HOURS, WEEKDAY, DAY, MONTH, YEAR = 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09
TIME_REGS = (SECONDS, MINUTES, HOURS, WEEKDAY, DAY, MONTH, YEAR, CENTURY)
KiB, MiB = 1 << 10, 1 << 20


def _bcd(v: int) -> int:
    return (v // 10) << 4 | v % 10


def _unbcd(v: int) -> int:
    return (v >> 4) * 10 + (v & 0x0F)


def memory_bytes(below_4g: int, above_4g: int, cpus: int) -> dict[int, int]:
    """QEMU's CMOS memory-size bytes for a machine with this much RAM below and above 4 GiB."""
    out: dict[int, int] = {}

    def put(first: int, value: int, n: int = 2) -> None:
        for i in range(n):
            out[first + i] = (value >> (8 * i)) & 0xFF
    put(0x15, 640)
    ext = min(max(below_4g - MiB, 0) // KiB, 0xFFFF)
    put(0x17, ext)
    put(0x30, ext)
    put(0x34, min(max(below_4g - 16 * MiB, 0) // (64 * KiB), 0xFFFF))
    put(0x5B, above_4g // (64 * KiB), 3)
    out[0x5F] = max(cpus - 1, 0) & 0xFF
    return out


class Cmos:
    """128 bytes of CMOS with a running clock; `clock` gives host UTC seconds (time.time)."""

    def __init__(self, below_4g: int, above_4g: int, cpus: int, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.offset = 0                 # guest time minus host time, in seconds
        self.index = 0
        self.ram = bytearray(128)
        self.ram[REG_A] = 0x26          # 32.768 kHz time base, 1024 Hz rate (QEMU's reset value)
        self.ram[REG_B] = B_24H
        self.ram[REG_D] = D_VRT
        for reg, value in memory_bytes(below_4g, above_4g, cpus).items():
            self.ram[reg] = value
        self._frozen: dict[int, int] | None = None

    # --- the clock ----------------------------------------------------------------------------------
    def _enc(self, v: int) -> int:
        return v if self.ram[REG_B] & B_BINARY else _bcd(v)

    def _dec(self, v: int) -> int:
        return v if self.ram[REG_B] & B_BINARY else _unbcd(v)

    def time_bytes(self) -> dict[int, int]:
        """The time registers as the guest reads them now."""
        t = time.gmtime(int(self.clock()) + self.offset)
        hour = t.tm_hour
        if not self.ram[REG_B] & B_24H:
            pm = hour >= 12
            hour = self._enc(hour % 12 or 12) | (0x80 if pm else 0)
        else:
            hour = self._enc(hour)
        return {SECONDS: self._enc(t.tm_sec), MINUTES: self._enc(t.tm_min), HOURS: hour,
                WEEKDAY: self._enc((t.tm_wday + 1) % 7 + 1), DAY: self._enc(t.tm_mday),
                MONTH: self._enc(t.tm_mon), YEAR: self._enc(t.tm_year % 100), CENTURY: self._enc(t.tm_year // 100)}

    def _set_from(self, regs: dict[int, int]) -> None:
        """Take the guest's time bytes (written while SET) as the new time; nonsense leaves the clock alone."""
        try:
            hour = regs[HOURS]
            if not self.ram[REG_B] & B_24H:
                pm = hour & 0x80
                hour = self._dec(hour & 0x7F) % 12 + (12 if pm else 0)
            else:
                hour = self._dec(hour)
            year = self._dec(regs[CENTURY]) * 100 + self._dec(regs[YEAR])
            import calendar                 # only when the guest sets the clock: not on a launch
            when = calendar.timegm((year, self._dec(regs[MONTH]), self._dec(regs[DAY]), hour,
                                    self._dec(regs[MINUTES]), self._dec(regs[SECONDS]), 0, 0, 0))
        except (ValueError, OverflowError):
            return
        self.offset = when - int(self.clock())

    # --- ports ----------------------------------------------------------------------------------------
    def io_read(self, offset: int, size: int) -> int:
        if offset == 0:
            return 0xFF
        reg = self.index
        if reg in TIME_REGS:
            source = self._frozen if self._frozen is not None else self.time_bytes()
            return source[reg]
        if reg == REG_A:
            return self.ram[REG_A] & ~A_UIP & 0xFF
        if reg == REG_C:
            value, self.ram[REG_C] = self.ram[REG_C], 0
            return value
        return self.ram[reg]

    def io_write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == 0:
            self.index = value & 0x7F
            return
        reg = self.index
        if reg in TIME_REGS:
            if self._frozen is not None:
                self._frozen[reg] = value
            else:
                regs = self.time_bytes()
                regs[reg] = value
                self._set_from(regs)
        elif reg == REG_B:
            was_set = self.ram[REG_B] & B_SET
            if value & B_SET and not was_set:
                self._frozen = self.time_bytes()
            self.ram[REG_B] = value
            if was_set and not value & B_SET and self._frozen is not None:
                self._set_from(self._frozen)
                self._frozen = None
        elif reg in (REG_C, REG_D):
            return                                    # read-only; D keeps VRT
        elif reg == REG_A:
            self.ram[REG_A] = value & ~A_UIP & 0xFF
        else:
            self.ram[reg] = value

"""A PS/2 controller (i8042) without devices behind it: enough for Linux's probe and its reboot=k path.

Registered at the PC's keyboard port (length 5): offset 0 is the data port, offset 4 the status/command port. Command
0xFE (pulse the reset line) and an output-port write with bit 0 clear call reset(), which is how Linux
and firmware reboot a PC.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

DATA, COMMAND = 0, 4
I8042_PORTS = 5                   # data .. status/command
ST_OBF, ST_IBF, ST_SYS, ST_CMD, ST_UNLOCKED = 0x01, 0x02, 0x04, 0x08, 0x10
CCB_KBD_INT, CCB_SYS, CCB_KBD_OFF, CCB_AUX_OFF, CCB_XLATE = 0x01, 0x04, 0x10, 0x20, 0x40
ACK = 0xFA
QUEUE = 16          # output bytes held at most, as QEMU's PS2_QUEUE_SIZE: a guest looping 0xd2 grows nothing


class I8042:
    """Controller state: status, command byte, output port and the output buffer the guest reads."""

    def __init__(self, reset: Callable[[], None], irq: Callable[[int, int], None] | None = None,
                 line: int | None = None) -> None:
        if irq is not None and line is None:
            raise ValueError("an i8042 with an irq callable needs its interrupt line")
        self.reset = reset
        self.irq = irq
        self.line = line
        self._lock = threading.Lock()
        self.status = ST_SYS | ST_UNLOCKED
        self.ccb = CCB_KBD_INT | CCB_SYS | CCB_AUX_OFF | CCB_XLATE
        self.outport = 0x03               # bit 0: reset line inactive, bit 1: A20 enabled
        self.out: deque[int] = deque()
        self.pending: int | None = None   # controller command waiting for its data byte
        self.kbd_param = False            # keyboard command waiting for its parameter byte
        self._level = 0

    def _push(self, *data: int) -> None:
        for b in data:
            if len(self.out) < QUEUE:           # full: drop the new byte, as QEMU's ps2_queue does
                self.out.append(b)

    def _sync(self) -> None:
        if self.out:
            self.status |= ST_OBF
        else:
            self.status &= ~ST_OBF
        level = 1 if self.out and self.ccb & CCB_KBD_INT else 0
        if level != self._level:
            self._level = level
            if self.irq is not None:
                self.irq(self.line, level)

    def io_read(self, offset: int, size: int) -> int:
        with self._lock:
            if offset == COMMAND:
                return self.status
            if offset != DATA:
                return 0xFF
            value = self.out.popleft() if self.out else 0
            self._sync()
            return value

    def io_write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        reset = False
        with self._lock:
            if offset == COMMAND:
                self.status |= ST_CMD
                reset = self._command(value)
            elif offset == DATA:
                self.status &= ~ST_CMD
                reset = self._data(value)
            self._sync()
        if reset:
            self.reset()

    def _command(self, cmd: int) -> bool:
        """A controller command; True when it resets the machine."""
        self.pending = None
        if cmd == 0x20:
            self._push(self.ccb)
        elif cmd in (0x60, 0xD1, 0xD2, 0xD3, 0xD4):
            self.pending = cmd
        elif cmd == 0xA7:
            self.ccb |= CCB_AUX_OFF
        elif cmd == 0xA8:
            self.ccb &= ~CCB_AUX_OFF
        elif cmd == 0xA9:
            self._push(0x01)              # AUX clock line stuck low: no mouse port here
        elif cmd == 0xAA:
            self.status |= ST_SYS
            self._push(0x55)              # self-test passed
        elif cmd == 0xAB:
            self._push(0x00)              # keyboard interface test passed
        elif cmd == 0xAD:
            self.ccb |= CCB_KBD_OFF
        elif cmd == 0xAE:
            self.ccb &= ~CCB_KBD_OFF
        elif cmd == 0xC0:
            self._push(0x00)              # input port
        elif cmd == 0xD0:
            self._push(self.outport)
        elif 0xF0 <= cmd <= 0xFF:
            return not cmd & 0x01         # pulse output lines; line 0 is the CPU reset
        return False

    def _data(self, value: int) -> bool:
        cmd, self.pending = self.pending, None
        if cmd == 0x60:
            self.ccb = value
        elif cmd == 0xD1:
            self.outport = value
            return not value & 0x01
        elif cmd in (0xD2, 0xD3):
            self._push(value)             # write to the keyboard/aux output buffer: loops back
        elif cmd == 0xD4:
            pass                          # to the (absent) mouse
        elif self.kbd_param:
            self.kbd_param = False
            self._push(ACK)
        else:
            self._keyboard(value)
        return False

    def _keyboard(self, value: int) -> None:
        """A command for the keyboard behind the controller, answered like a standard MF2 keyboard."""
        if value == 0xFF:
            self._push(ACK, 0xAA)         # reset: ACK, then self-test passed
        elif value == 0xF2:
            self._push(ACK, 0xAB, 0x83)   # identify: MF2 keyboard
        elif value == 0xEE:
            self._push(0xEE)              # echo
        elif value in (0xED, 0xF0, 0xF3):
            self.kbd_param = True         # LEDs, scan-code set, typematic: a parameter follows
            self._push(ACK)
        else:
            self._push(ACK)

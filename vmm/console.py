"""Host stdin to the guest's COM1, QEMU style: raw mode on a terminal, ctrl-a x quits, ctrl-a ctrl-a sends ctrl-a."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

CTRL_A = 0x01


class StdinPump:
    """Reads stdin on a daemon thread and hands bytes to `feed`; `quit` is called on ctrl-a x (terminal only)."""

    def __init__(self, feed: Callable[[bytes], object], quit: Callable[[], None], fd: int = 0) -> None:
        self.feed = feed
        self.quit = quit
        self.fd = fd
        self._saved = None
        self._escape = False
        self.interactive = os.isatty(fd)

    def start(self) -> None:
        if self.interactive:             # termios and tty only for a terminal: a launch from a script needs neither
            import termios
            import tty
            self._saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        threading.Thread(target=self._loop, name="stdin", daemon=True).start()

    def restore(self) -> None:
        """Give the terminal back its settings (call on every exit path)."""
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def filter(self, data: bytes) -> bytes:
        """Strip the ctrl-a escapes; calls quit() on ctrl-a x."""
        if not self.interactive:
            return data
        out = bytearray()
        for b in data:
            if self._escape:
                self._escape = False
                if b in (ord("x"), ord("X")):
                    self.quit()
                    break
                if b == CTRL_A:
                    out.append(CTRL_A)
                continue
            if b == CTRL_A:
                self._escape = True
            else:
                out.append(b)
        return bytes(out)

    def _loop(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if not data:
                return
            data = self.filter(data)
            if data:
                self.feed(data)


class SerialFeed:
    """Host input for whichever machine is current: bytes that arrive while there is none (before the first
    machine is built, between a guest reset and its relaunch) wait and go to the next, so piped input is never
    lost whenever it is written."""

    def __init__(self) -> None:
        self.machine = None
        self._pending = bytearray()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        with self._lock:
            if self.machine is None:
                self._pending += data
                return
            self.machine.serial_input(data)

    def attach(self, machine) -> None:
        """The machine now running (None: none)."""
        with self._lock:
            self.machine = machine
            if machine is not None and self._pending:
                machine.serial_input(bytes(self._pending))
                self._pending.clear()


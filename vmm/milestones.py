"""`--trace milestones`: when a firmware boot reaches the points that show how far it got, in seconds since the
vCPUs started. Useful where firmware prints nothing for most of its boot: edk2's RELEASE OVMF is silent until
its console connects, so its progress is read from the devices it touches (the order QEMU's pc machine sees).

- reset vector: the first exit at all; the processor fetched from the firmware window and ran to a device
- PCI host bridge probe: a configuration read of 00:00.0's IDs (OVMF's SEC picks i440FX or Q35 code by it)
- fw_cfg signature read: a data read with the signature key selected (OVMF's PEI and every DXE fw_cfg user)
- first serial byte: COM1 transmitted something (OVMF's console is connected)
- shell: "Shell> " on COM1 once ANSI escapes are stripped (edk2 ShellPkg's prompt)
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

RESET_VECTOR, HOST_BRIDGE, FW_CFG_SIGNATURE, FIRST_SERIAL, SHELL = (
    "reset vector", "PCI host bridge probe", "fw_cfg signature read", "first serial byte", "shell")
NAMES = (RESET_VECTOR, HOST_BRIDGE, FW_CFG_SIGNATURE, FIRST_SERIAL, SHELL)
SHELL_PROMPT = "Shell> "
_ESCAPE = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]|\r")


def strip_ansi(text: str) -> str:
    """Serial text without ANSI escape sequences and carriage returns, as a person reads it."""
    return _ESCAPE.sub("", text)


class Milestones:
    """Records each milestone once, with its time; `log` is told as each is reached."""

    def __init__(self, log: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.clock = clock
        self.start = clock()
        self.reached: dict[str, float] = {}
        self._tail = ""
        self._lock = threading.Lock()
        self._running = False

    def started(self) -> None:
        """The vCPUs are about to run for the first time: times count from here (a relaunch after a guest reset
        keeps counting)."""
        if not self._running:
            self._running = True
            self.start = self.clock()

    def reach(self, name: str) -> None:
        with self._lock:
            if name in self.reached:
                return
            self.reached[name] = t = self.clock() - self.start
        self.log(f"pyvmm: milestone: {name} at {t:.3f} s")

    def serial(self, data: bytes) -> None:
        """COM1 output: the first byte, and the shell prompt (which may arrive split across calls)."""
        if FIRST_SERIAL not in self.reached and data:
            self.reach(FIRST_SERIAL)
        if SHELL in self.reached:
            return
        text = strip_ansi(self._tail + data.decode("latin-1"))
        if SHELL_PROMPT in text:
            self.reach(SHELL)
        self._tail = text[-64:]


class WatchPorts:
    """A port device wrapped so that `on_read(offset, size)` / `on_write(offset, size, value)` see each access first."""

    def __init__(self, device, on_read=None, on_write=None) -> None:
        self.device = device
        self.on_read = on_read
        self.on_write = on_write

    def io_read(self, offset: int, size: int) -> int:
        if self.on_read is not None:
            self.on_read(offset, size)
        return self.device.io_read(offset, size)

    def io_write(self, offset: int, size: int, value: int) -> None:
        if self.on_write is not None:
            self.on_write(offset, size, value)
        self.device.io_write(offset, size, value)

    def io_read_string(self, offset: int, size: int, count: int) -> bytes:
        if self.on_read is not None:
            self.on_read(offset, size)
        many = getattr(self.device, "io_read_string", None)
        if many is not None:
            return many(offset, size, count)
        return b"".join(self.device.io_read(offset, size).to_bytes(size, "little") for _ in range(count))

    def io_write_string(self, offset: int, size: int, data: bytes) -> None:
        many = getattr(self.device, "io_write_string", None)
        if many is not None:
            if self.on_write is not None:
                self.on_write(offset, size, int.from_bytes(data[:size], "little"))
            many(offset, size, data)
            return
        for i in range(0, len(data), size):
            self.io_write(offset, size, int.from_bytes(data[i:i + size], "little"))

"""SIGINT, SIGTERM and SIGHUP while `pyvmm` runs a guest: a clean stop with a documented status, not a kill."""

from __future__ import annotations

import threading

# `signal` converts its constants to enums at import (it imports `enum`); the launch path uses the C module
# underneath it in CPython, `_signal`, which has the same functions, and `signal` only to name a signal caught.
import _signal as signal


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP during a run end it like ctrl-a x does: every vCPU leaves KVM_RUN, the terminal
    gets its settings back, and the status is 128 + the signal's number (130, 143, 129), as a shell reports a
    process the signal killed. QEMU also stops cleanly on these signals ('terminating on signal N'). A signal that
    arrives between two machines (a relaunch) stops the next one before it runs."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, current: list) -> None:
        self.current = current
        self.stop: tuple[int, str] | None = None
        self.signal_line = ""
        self._saved: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                num = getattr(signal, name)
                if signal.getsignal(num) != signal.SIG_IGN:     # nohup and friends keep their say
                    self._saved[num] = signal.signal(num, self._on_signal)

    def uninstall(self) -> None:
        for num, handler in self._saved.items():
            signal.signal(num, handler)
        self._saved.clear()

    def _on_signal(self, num: int, frame: object) -> None:
        import signal as named
        name = named.Signals(num).name
        self.stop = (128 + num, f"terminating on signal {num} ({name})")
        self.signal_line = f"pyvmm: {self.stop[1]}"
        self._stop_current()

    def on_machine(self, machine) -> None:
        self.current[0] = machine
        self._stop_current()

    def _stop_current(self) -> None:
        # Not request_stop() here: a Python signal handler runs on the main thread between two bytecodes, possibly
        # inside request_stop's own lock; a short thread takes the lock in its turn.
        from ..machine import Outcome
        m = self.current[0]
        if m is not None and self.stop is not None:
            threading.Thread(target=m.request_stop, args=(Outcome.QUIT, *self.stop), daemon=True).start()

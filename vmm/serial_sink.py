"""Where COM1's output goes, made safe against the host side failing: a full disk (`--serial file:/dev/full`), a
reader that left (`pyvmm ... | head`: EPIPE), a closed stdout. QEMU's serial device does the same with a chardev
write error (hw/char/serial.c drops the byte): the guest runs on to its own end, its output is dropped, and the
VMM says so once on stderr instead of dying on a vCPU thread with an OSError.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def guarded(write: Callable[[bytes], object], what: str, on_close: Callable[[], None] | None = None
            ) -> Callable[[bytes], None]:
    """A sink that calls `write` until it raises OSError once, then reports one line and drops everything after.
    on_close runs at that moment (stdout: point fd 1 at /dev/null so the interpreter's own flush at exit cannot
    raise the same error again)."""
    dead = False

    def out(data: bytes) -> None:
        nonlocal dead
        if dead:
            return
        try:
            write(data)
        except (OSError, ValueError) as e:          # ValueError: a file closed under us
            dead = True
            if on_close is not None:
                on_close()
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            print(f"pyvmm: serial output to {what} failed ({reason}); the guest runs on, its output is dropped",
                  file=sys.stderr, flush=True)
    return out


def silence_stdout() -> None:
    """Point fd 1 (and Python's stdout) at /dev/null: what was buffered for a reader that left is discarded."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def stdout_sink() -> Callable[[bytes], None]:
    """COM1 to stdout, flushed per chunk; guarded (EPIPE or a closed fd 1 drops output, once reported)."""
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:                               # started with fd 1 closed: Python has no stdout at all
        def gone(data: bytes) -> None:
            raise OSError(9, os.strerror(9))
        return guarded(gone, "stdout")

    def write(data: bytes) -> None:
        stream.write(data)
        stream.flush()
    return guarded(write, "stdout", on_close=silence_stdout)

"""Closing finished machines off the caller's thread, for callers that launch VM after VM.

Closing a VM's last file descriptor makes the kernel destroy it before close() returns (Linux's
kvm_destroy_vm: the MMU, the in-kernel irqchip, the PIT and its worker thread, SRCU grace periods): 10-25 ms
on a nested host, more than building and running a small guest. A loader regression suite that launches
VM after VM through vmm.api.run_igvm would pay that for every launch while nothing waits on it, so the API
hands each finished machine to a thread that closes it while the caller goes on. Each close has a thread of
its own: the kernel spends that time waiting (well under 1 ms of CPU per close here), so closes overlap.

At most MAX_PENDING machines wait to be closed (a caller faster than the kernel waits for a slot, so guest
RAM cannot pile up); drain() waits until all are closed. A close that fails is raised from the next
close_later() or drain() on the caller's thread, not lost. The `pyvmm` command closes its one machine
itself: its process exit would wait for the kernel either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

MAX_PENDING = 4

_cond = threading.Condition()
_pending = 0
_failed: list[BaseException] = []


def close_later(close: Callable[[], None]) -> None:
    """Run close() on a thread of its own; waits while MAX_PENDING closes are outstanding."""
    global _pending
    with _cond:
        _raise_failure()
        while _pending >= MAX_PENDING:
            _cond.wait()
        _pending += 1
    threading.Thread(target=_run, args=(close,), name="pyvmm-teardown", daemon=True).start()


def drain() -> None:
    """Wait until every machine handed to close_later is closed."""
    with _cond:
        while _pending:
            _cond.wait()
        _raise_failure()


def pending() -> int:
    """Machines handed over and not yet closed."""
    with _cond:
        return _pending


def _raise_failure() -> None:
    if _failed:
        raise _failed.pop(0)


def _run(close: Callable[[], None]) -> None:
    global _pending
    try:
        close()
    except BaseException as e:      # reported to the caller by the next close_later/drain
        with _cond:
            _failed.append(e)
    finally:
        with _cond:
            _pending -= 1
            _cond.notify_all()

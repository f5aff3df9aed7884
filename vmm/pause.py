"""Pausing the other vCPUs while one runs an emulated locked read-modify-write (lock cmpxchg16b)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class VcpuPause:
    """Keeps every other vCPU out of KVM_RUN while one vCPU runs a locked read-modify-write.

    The other vCPU threads call park() whenever KVM_RUN returns EINTR (a kick); it blocks while a pause is on."""

    def __init__(self, vcpus: list) -> None:
        self._vcpus = vcpus
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._parked = 0
        self._active = len(vcpus)

    @property
    def requested(self) -> bool:
        return self._owner is not None

    def park(self) -> None:
        with self._cond:
            me = threading.get_ident()
            while self._owner is not None and self._owner != me:
                self._parked += 1
                self._cond.notify_all()
                self._cond.wait()
                self._parked -= 1

    def leave(self) -> None:
        """A vCPU thread ends: it no longer has to park."""
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    @contextmanager
    def exclusive(self, vcpu) -> Iterator[None]:
        with self._cond:
            while self._owner is not None:     # another vCPU's locked instruction first
                self._parked += 1
                self._cond.notify_all()
                self._cond.wait()
                self._parked -= 1
            self._owner = threading.get_ident()
        try:
            with self._cond:
                while self._parked < self._active - 1:
                    for v in self._vcpus:
                        if v is not vcpu:
                            v.kick()
                    self._cond.wait(0.005)
            yield
        finally:
            with self._cond:
                self._owner = None
                self._cond.notify_all()

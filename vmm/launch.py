"""Run a machine from a plan, relaunching it on guest reset unless told not to (QEMU's -no-reboot).

A reset keeps guest RAM, as QEMU and hardware do: the next machine (a new KVM VM, so fresh vCPUs and devices,
and no KVM writer such as kvmclock or steal time left pointing into RAM) runs on the same memory, with the
firmware's own pages applied again. A reset with a vmfwupdate request pending launches the requested IGVM
instead, which then stays the firmware for later resets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from loaders.plan import LoadPlan

from . import status
from .machine import Machine, MachineConfig, Outcome, RunResult
from .memory import GuestMemory
from .vmfwupdate import Firmware

MAX_QUICK_RESETS = 20         # resets in a row, each within QUICK_RESET seconds of its run's start: a reset storm
QUICK_RESET = 1.0


class NextMachine:
    """The next machine built, and the old one closed, each in a thread, so that a vmfwupdate reset validates its
    image meanwhile (creating and closing a VM are mostly ioctls and close(), which drop the GIL). No vCPU of the
    old VM runs again, so nothing of it writes RAM; still, the new firmware runs only after closed() returned."""

    def __init__(self, old: Machine, config: MachineConfig, memory: GuestMemory) -> None:
        self._machine: Machine | None = None
        self._errors: list[BaseException] = []
        self._closer = self._start(old.close)
        self._builder = self._start(lambda: setattr(self, "_machine", Machine(config, memory=memory)))

    def _start(self, work: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as e:      # raised again in the launching thread
                self._errors.append(e)
        t = threading.Thread(target=run, name="next-machine", daemon=True)
        t.start()
        return t

    def _raise(self) -> None:
        if self._errors:
            raise self._errors[0]

    def result(self) -> Machine:
        """The new machine, once built (the old one may still be closing)."""
        self._builder.join()
        self._raise()
        m, self._machine = self._machine, None
        return m

    def closed(self) -> None:
        """Wait until the old machine is closed."""
        self._closer.join()
        self._raise()

    def discard(self) -> None:
        """Wait for both threads; close the new machine unless result() handed it out."""
        self._builder.join()
        self._closer.join()
        if self._machine is not None:
            self._machine.close()


def launch(config: MachineConfig, make_plan: Callable[[Machine], LoadPlan], *, no_reboot: bool = False,
           timeout: float | None = None, on_machine: Callable[[Machine | None], None] | None = None,
           close_later: bool = False) -> RunResult:
    """Build, load and run; on RESET build a fresh machine on the same RAM and load the current firmware.

    make_plan gets the first machine so a loader can ask for its RAM layout and vCPU count; its plan is the
    firmware until a vmfwupdate request replaces it. With no_reboot a plain reset ends the run; a reset that
    applies an update does not. on_machine is told which machine is current (for the stdin pump) and None
    at the end. close_later: the last machine is closed by vmm.teardown's thread, so the caller does not wait
    for the kernel to destroy the VM (a machine that resets is closed before the next firmware runs).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    quick = 0
    try:
        with GuestMemory(config.memory) as memory:
            first = Machine(config, memory=memory)
            # make_plan runs once, for the first machine
            firmware = Firmware(lambda: make_plan(first), config.memory, config.cpus, config.log)
            m: Machine | None = first
            following: NextMachine | None = None
            later = False                       # the last machine goes to vmm.teardown
            try:
                while True:
                    m.load(firmware.plan())
                    firmware.settle()           # an update's image copy is complete before anything runs
                    if following is not None:
                        following.closed()      # and the old machine is gone
                        following = None
                    if on_machine:
                        on_machine(m)
                    started = time.monotonic()
                    left = None if deadline is None else max(0.0, deadline - started)
                    result = m.run(left)
                    ran = time.monotonic() - started
                    if on_machine:
                        on_machine(None)
                    if result.outcome is not Outcome.RESET:
                        later = close_later
                        return result
                    request = m.vmfwupdate.pending() if m.vmfwupdate else None
                    if request is None and no_reboot:
                        return result
                    # Every vCPU thread has ended: the guest cannot change the image any more, and no vCPU of the
                    # old VM runs again, so nothing of the old boot writes RAM while the image is read.
                    following, m = NextMachine(m, config, memory), None
                    try:
                        updated = request is not None and firmware.update(memory, *request)
                    except BaseException:
                        following.discard()
                        following = None
                        raise
                    if not updated and no_reboot:
                        following.discard()
                        following = None
                        return result
                    m = following.result()
                    # Counted by run time, not by resets per wall second: building a 64-vCPU machine can itself
                    # take longer than 1/20 s on a slow host, and the storm must end there too.
                    quick = quick + 1 if ran < QUICK_RESET else 0
                    first_line = result.message.splitlines()[0]
                    if quick > MAX_QUICK_RESETS:
                        return RunResult(Outcome.FATAL, status.FATAL, f"guest reset {quick} times within a second of "
                                                                      f"starting, in a row; giving up (last: {first_line})")
                    if updated:
                        config.log(f"pyvmm: {first_line}; vmfwupdate: launching the new firmware "
                                   f"({request[1]:#x} bytes from {request[0]:#x})")
                    else:
                        config.log(f"pyvmm: {first_line}; relaunching")
            finally:
                if m is not None and later:
                    from .teardown import close_later as close_off_thread
                    close_off_thread(m.close)
                elif m is not None:
                    m.close()
                if following is not None:
                    following.discard()
                firmware.close()
    finally:
        if on_machine:
            on_machine(None)

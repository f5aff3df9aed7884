"""Run a machine from a plan, relaunching it on guest reset unless told not to (QEMU's -no-reboot).

A reset keeps guest RAM, as QEMU and hardware do: the next machine (a new KVM VM, so fresh vCPUs and devices,
and no KVM writer such as kvmclock or steal time left pointing into RAM) runs on the same memory, with the
firmware's own pages applied again. A reset with a vmfwupdate request pending launches the requested IGVM
instead, which then stays the firmware for later resets.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from loaders.plan import LoadPlan

from . import status
from .machine import Machine, MachineConfig, Outcome, RunResult
from .memory import GuestMemory
from .vmfwupdate import Firmware

MAX_QUICK_RESETS = 20         # resets in a row, each within QUICK_RESET seconds of its run's start: a reset storm
QUICK_RESET = 1.0


class NextMachine:
    """The old machine closed and the next one built in a thread, so that a vmfwupdate reset validates its image
    meanwhile (closing a VM and creating one are mostly ioctls and close(), which drop the GIL). Nothing loads
    the new machine before result() returned, so the old VM is gone by then: no writer of it is left."""

    def __init__(self, old: Machine, config: MachineConfig, memory: GuestMemory) -> None:
        self._old, self._config, self._memory = old, config, memory
        self._machine: Machine | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="next-machine", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self._old.close()
            self._machine = Machine(self._config, memory=self._memory)
        except BaseException as e:      # raised again in the launching thread
            self._error = e

    def result(self) -> Machine:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._machine

    def discard(self) -> None:
        self._thread.join()
        if self._machine is not None:
            self._machine.close()


def launch(config: MachineConfig, make_plan: Callable[[Machine], LoadPlan], *, no_reboot: bool = False,
           timeout: float | None = None, on_machine: Callable[[Machine | None], None] | None = None) -> RunResult:
    """Build, load and run; on RESET build a fresh machine on the same RAM and load the current firmware.

    make_plan gets the first machine so a loader can ask for its RAM layout and vCPU count; its plan is the
    firmware until a vmfwupdate request replaces it. With no_reboot a plain reset ends the run; a reset that
    applies an update does not. on_machine is told which machine is current (for the stdin pump) and None
    at the end.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    quick = 0
    try:
        with GuestMemory(config.memory) as memory:
            first = Machine(config, memory=memory)
            # make_plan runs once, for the first machine
            firmware = Firmware(lambda: make_plan(first), config.memory, config.cpus, config.log)
            m: Machine | None = first
            try:
                while True:
                    m.load(firmware.plan())
                    firmware.settle()           # an update's image copy is complete before anything runs
                    if on_machine:
                        on_machine(m)
                    started = time.monotonic()
                    left = None if deadline is None else max(0.0, deadline - started)
                    result = m.run(left)
                    ran = time.monotonic() - started
                    if on_machine:
                        on_machine(None)
                    if result.outcome is not Outcome.RESET:
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
                        raise
                    if not updated and no_reboot:
                        following.discard()
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
                if m is not None:
                    m.close()
                firmware.close()
    finally:
        if on_machine:
            on_machine(None)

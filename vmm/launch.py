"""Run a machine from a plan, relaunching it on guest reset unless told not to (QEMU's -no-reboot).

A reset keeps guest RAM, as QEMU and hardware do: the next machine (a new KVM VM, so fresh vCPUs and devices,
and no KVM writer such as kvmclock or steal time left pointing into RAM) runs on the same memory, with the
firmware's own pages applied again. A reset with a vmfwupdate request pending launches the requested IGVM
instead, which then stays the firmware for later resets.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loaders.plan import LoadPlan

from . import status
from .machine import Machine, MachineConfig, Outcome, RunResult
from .memory import GuestMemory
from .vmfwupdate import Firmware

MAX_QUICK_RESETS = 20         # resets in a row, each within QUICK_RESET seconds of its run's start: a reset storm
QUICK_RESET = 1.0


class _Closing:
    """Closes a finished machine on the way out of its block: here, or by vmm.teardown's thread when the body
    set `later` (the run ended for good, so nothing waits on the kernel destroying the VM)."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.later = False

    def __enter__(self) -> "_Closing":
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self.later and exc_type is None:
            from .teardown import close_later
            close_later(self.machine.close)
        else:
            self.machine.close()


def launch(config: MachineConfig, make_plan: Callable[[Machine], LoadPlan], *, no_reboot: bool = False,
           timeout: float | None = None, on_machine: Callable[[Machine | None], None] | None = None,
           close_later: bool = False) -> RunResult:
    """Build, load and run; on RESET build a fresh machine on the same RAM and load the current firmware.

    make_plan gets the first machine so a loader can ask for its RAM layout and vCPU count; its plan is the
    firmware until a vmfwupdate request replaces it. With no_reboot a plain reset ends the run; a reset that
    applies an update does not. on_machine is told which machine is current (for the stdin pump) and None
    at the end. close_later: the last machine is closed by vmm.teardown's thread, so the caller does not wait
    for the kernel to destroy the VM (a machine that resets is closed here, before RAM is read again).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    quick = 0
    try:
        with GuestMemory(config.memory) as memory:
            # make_plan runs once, for the first machine (m is bound by then)
            firmware = Firmware(lambda: make_plan(m), config.memory, config.cpus, config.log)
            try:
                while True:
                    m = Machine(config, memory=memory)
                    with _Closing(m) as closing:
                        m.load(firmware.plan())
                        if on_machine:
                            on_machine(m)
                        started = time.monotonic()
                        left = None if deadline is None else max(0.0, deadline - started)
                        result = m.run(left)
                        ran = time.monotonic() - started
                        if on_machine:
                            on_machine(None)
                        request = m.vmfwupdate.pending() if m.vmfwupdate and result.outcome is Outcome.RESET else None
                        closing.later = close_later and result.outcome is not Outcome.RESET
                    if result.outcome is not Outcome.RESET:
                        return result
                    # Every vCPU thread has ended and the VM is closed: the guest cannot change the image any more
                    # and nothing of the old boot writes RAM. (Reading it only now is also faster on a nested host:
                    # while a VM that has run exists, every host page fault pays for it.)
                    updated = request is not None and firmware.update(memory, *request)
                    if not updated and no_reboot:
                        return result
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
                firmware.close()
    finally:
        if on_machine:
            on_machine(None)


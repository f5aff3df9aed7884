"""Run a machine from a plan, relaunching it on guest reset unless told not to (QEMU's -no-reboot).

A reset keeps guest RAM, as QEMU and hardware do: the next machine (a new KVM VM, so fresh vCPUs and devices,
and no KVM writer such as kvmclock or steal time left pointing into RAM) runs on the same memory, with the
firmware's own pages applied again. A reset with a vmfwupdate request pending launches the requested IGVM
instead, which then stays the firmware for later resets.
"""

from __future__ import annotations

import time
from typing import Callable

from loaders.plan import LoadPlan

from .machine import Machine, MachineConfig, Outcome, RunResult
from .memory import GuestMemory

MAX_QUICK_RESETS = 20         # resets in a row, each within QUICK_RESET seconds of its run's start: a reset storm
QUICK_RESET = 1.0


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
    firmware: LoadPlan | None = None
    held = None              # the host copy of an applied update: the firmware's page data points into it
    try:
        with GuestMemory(config.memory) as memory:
            while True:
                with Machine(config, memory=memory) as m:
                    if firmware is None:
                        firmware = make_plan(m)
                    m.load(firmware)
                    if on_machine:
                        on_machine(m)
                    started = time.monotonic()
                    left = None if deadline is None else max(0.0, deadline - started)
                    result = m.run(left)
                    ran = time.monotonic() - started
                    if on_machine:
                        on_machine(None)
                    request = m.vmfwupdate.pending() if m.vmfwupdate and result.outcome is Outcome.RESET else None
                # Every vCPU thread has ended and the VM is gone: the guest cannot change its RAM any more, and no
                # KVM writer (kvmclock, steal time, async PF, PV EOI) is left. Copying only now is also much faster
                # on a nested host: while a VM that has run exists, every host page fault pays for it.
                image = _copy_out(memory, *request) if request else None
                if result.outcome is not Outcome.RESET:
                    return result
                update = _update(image.view, request, config) if image is not None else None
                if update is None and image is not None:
                    image.close()
                if update is None and no_reboot:
                    return result
                # Counted by run time, not by resets per wall second: building a 64-vCPU machine can itself take
                # longer than 1/20 s on a slow host, and the storm must end there too.
                quick = quick + 1 if ran < QUICK_RESET else 0
                if quick > MAX_QUICK_RESETS:
                    return RunResult(Outcome.FATAL, 3, f"guest reset {quick} times within a second of starting, in a "
                                                       f"row; giving up (last: {result.message.splitlines()[0]})")
                if update is not None:
                    firmware = update                   # the previous update's plan is gone: its copy can go
                    if held is not None:
                        held.close()
                    held = image
                    config.log(f"pyvmm: {result.message.splitlines()[0]}; vmfwupdate: launching the new firmware "
                               f"({request[1]:#x} bytes from {request[0]:#x})")
                else:
                    config.log(f"pyvmm: {result.message.splitlines()[0]}; relaunching")
    finally:
        firmware = update = None          # no plan may point into the copy when it is unmapped
        if held is not None:
            held.close()
        if on_machine:
            on_machine(None)


def _copy_out(memory: GuestMemory, addr: int, size: int):
    """The image as a host copy (a kvm.mman.HostMapping), populated in one call so copying 64 MiB costs no page
    fault per page. Small pages: huge ones made this copy swing from 25 to 900 ms on a busy host (compaction);
    the caller closes it once no plan refers to it."""
    from kvm.mman import HostMapping
    copy = HostMapping(size, what="vmfwupdate image copy")
    copy.populate()
    copy.view[:] = memory.view(addr, size)
    return copy


def _update(image: memoryview, request: tuple[int, int], config: MachineConfig) -> LoadPlan | None:
    """The plan of a requested update, or None after one stderr line saying why it is refused."""
    from loaders.errors import LoadError

    from .vmfwupdate import plan_update
    try:
        return plan_update(image, *request, config.memory, config.cpus)
    except (LoadError, ValueError) as e:
        config.log(f"pyvmm: vmfwupdate: update refused: {e}; plain reset with the current firmware")
        return None

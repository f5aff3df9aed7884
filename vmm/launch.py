"""Run a machine from a plan, relaunching it on guest reset unless told not to (QEMU's -no-reboot)."""

from __future__ import annotations

import time
from typing import Callable

from loaders.plan import LoadPlan

from . import status
from .machine import Machine, MachineConfig, Outcome, RunResult

MAX_QUICK_RESETS = 20         # resets in a row, each within QUICK_RESET seconds of its run's start: a reset storm
QUICK_RESET = 1.0


def launch(config: MachineConfig, make_plan: Callable[[Machine], LoadPlan], *, no_reboot: bool = False,
           timeout: float | None = None, on_machine: Callable[[Machine | None], None] | None = None) -> RunResult:
    """Build, load and run; on RESET build a fresh machine from the same source (fresh RAM, reset vCPUs).

    make_plan gets the machine so a loader can ask for its RAM layout and vCPU count. on_machine is told
    which machine is current (for the stdin pump) and None at the end.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    quick = 0
    try:
        while True:
            with Machine(config) as m:
                m.load(make_plan(m))
                if on_machine:
                    on_machine(m)
                started = time.monotonic()
                left = None if deadline is None else max(0.0, deadline - started)
                result = m.run(left)
                ran = time.monotonic() - started
                if on_machine:
                    on_machine(None)
            if result.outcome is not Outcome.RESET or no_reboot:
                return result
            # Counted by run time, not by resets per wall second: building a 64-vCPU machine can itself take
            # longer than 1/20 s on a slow host, and the storm must end there too.
            quick = quick + 1 if ran < QUICK_RESET else 0
            if quick > MAX_QUICK_RESETS:
                return RunResult(Outcome.FATAL, status.FATAL,
                                 f"guest reset {quick} times within a second of starting, in a row; "
                                 f"giving up (last: {result.message.splitlines()[0]})")
            config.log(f"pyvmm: {result.message.splitlines()[0]}; relaunching")
    finally:
        if on_machine:
            on_machine(None)

"""Run a machine from a plan, relaunching it on guest reset unless told not to (QEMU's -no-reboot)."""

from __future__ import annotations

import time
from typing import Callable

from loaders.plan import LoadPlan

from .machine import Machine, MachineConfig, Outcome, RunResult

MAX_RELAUNCHES_PER_SECOND = 20


def launch(config: MachineConfig, make_plan: Callable[[Machine], LoadPlan], *, no_reboot: bool = False,
           timeout: float | None = None, on_machine: Callable[[Machine | None], None] | None = None) -> RunResult:
    """Build, load and run; on RESET build a fresh machine from the same source (fresh RAM, reset vCPUs).

    make_plan gets the machine so a loader can ask for its RAM layout and vCPU count. on_machine is told
    which machine is current (for the stdin pump) and None at the end.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    recent: list[float] = []
    try:
        while True:
            with Machine(config) as m:
                m.load(make_plan(m))
                if on_machine:
                    on_machine(m)
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                result = m.run(left)
                if on_machine:
                    on_machine(None)
            if result.outcome is not Outcome.RESET or no_reboot:
                return result
            now = time.monotonic()
            recent = [t for t in recent if now - t < 1.0] + [now]
            if len(recent) > MAX_RELAUNCHES_PER_SECOND:
                return RunResult(Outcome.FATAL, 3, f"guest reset {len(recent)} times within a second; giving up "
                                                   f"(last: {result.message.splitlines()[0]})")
            config.log(f"pyvmm: {result.message.splitlines()[0]}; relaunching")
    finally:
        if on_machine:
            on_machine(None)

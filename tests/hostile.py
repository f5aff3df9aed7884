"""The hostile guest (tests/guests/hostile.c) as a load plan and a runner, shared by the default-run test and the
long campaign script (tests/bench/campaign_guests.py).

The guest's parameters travel in a block the plan writes at PARAMS_GPA, so one build serves every seed, size and
mode; the serial line it prints at the end is parsed into counts here.
"""

from __future__ import annotations

import re
import struct
import threading
import time
from dataclasses import dataclass, field

from loaders.flat import flat_plan
from loaders.plan import LoadPlan, MemoryWrite
from tests.guests.build import build
from vmm.launch import launch
from vmm.machine import Machine, MachineConfig, Outcome, RunResult

PARAMS_GPA = 0x8000
PARAMS_SIZE = 0x1000               # parameters, then the vCPUs' done counter and counts (zeroed on every launch)
MAGIC = int.from_bytes(b"HOSTILE1", "little")
MODE_SWEEP, MODE_RESET = 1, 2
RESET_WITHIN = 2000               # a reset machine resets within its first RESET_WITHIN operations (keeps rounds short)
HEALTHY = (0x10 << 1) | 1          # the guest's exit when fw_cfg still serves a good descriptor at the end
COUNTS = re.compile(rb"hostile ops=(\d+) port=(\d+) string=(\d+) dma=(\d+) dma_ok=(\d+) dma_err=(\d+) "
                    rb"dma_untouched=(\d+) fwread=(\d+) vmfw=(\d+)")


def hostile_image() -> bytes:
    return build("start64.S", extra_sources=("hostile.c",))


def hostile_plan(image: bytes, *, seed: int, ops: int, memory: int, cpus: int, mode: int = 0,
                 reset_after: int = 0, resets: int = 0) -> LoadPlan:
    """The flat plan for `image` plus the parameter page (ops per vCPU; 0 runs forever). In MODE_RESET vCPU 0
    resets the machine `resets` times (counted in RAM that survives a reset), the first after reset_after of its
    operations; the machine after the last reset runs its stream to the end."""
    if not 1 <= cpus <= 48:
        raise ValueError("the hostile guest keeps counts for 48 vCPUs at most")
    plan = flat_plan(image, cpus=cpus)
    block = struct.pack("<8Q", MAGIC, seed, ops, memory, mode, reset_after, cpus, resets).ljust(PARAMS_SIZE, b"\0")
    plan.writes.append(MemoryWrite(PARAMS_GPA, block, "hostile parameters"))
    return plan


@dataclass
class HostileRun:
    result: RunResult
    serial: bytes
    seconds: float
    runs: int = 1                                         # machines built (1 + relaunches after resets)
    counts: dict[str, int] = field(default_factory=dict)  # the guest's final line, parsed
    log: list[str] = field(default_factory=list)          # what the VMM logged (vmfwupdate refusals, relaunches)

    @property
    def status(self) -> int:
        return self.result.status


def _parse(serial: bytes) -> dict[str, int]:
    m = COUNTS.search(serial)
    names = ("ops", "port", "string", "dma", "dma_ok", "dma_err", "dma_untouched", "fwread", "vmfw")
    return dict(zip(names, map(int, m.groups()))) if m else {}


def run_hostile(*, seed: int, ops: int, memory: int = 64 << 20, cpus: int = 2, mode: int = 0,
                resets: int = 0, timeout: float = 120.0, image: bytes | None = None) -> HostileRun:
    """Run the hostile guest through vmm.launch (relaunch on reset, as the CLI does). With resets=N the first N
    machines reset mid-stream (vCPU 0 after a seeded number of operations, the others still firing DMA) and the
    last runs to its end; each machine after a reset draws a new stream. `runs` counts the machines."""
    image = image or hostile_image()
    out = bytearray()
    lock = threading.Lock()
    launched, machines = [0], [0]

    def sink(data: bytes) -> None:
        with lock:
            out.extend(data)

    def make_plan(machine: Machine) -> LoadPlan:
        launched[0] += 1
        return hostile_plan(image, seed=seed, ops=ops, memory=memory, cpus=cpus,
                            mode=(mode | MODE_RESET) if resets else mode, resets=resets,
                            reset_after=(seed * 7919) % max(1, min(ops, RESET_WITHIN)))

    def count(machine: Machine | None) -> None:
        if machine is not None:
            machines[0] += 1
    log: list[str] = []
    cfg = MachineConfig(memory=memory, cpus=cpus, serial_out=sink)
    cfg.log = log.append
    started = time.monotonic()
    result = launch(cfg, make_plan, timeout=timeout, on_machine=count)
    return HostileRun(result, bytes(out), time.monotonic() - started, machines[0], _parse(bytes(out)), log)


def run_hostile_machine(*, seed: int, ops: int, memory: int = 64 << 20, cpus: int = 2, mode: int = 0,
                        reset_after: int = 0, timeout: float = 120.0, image: bytes | None = None) -> HostileRun:
    """One machine, no relaunch: what one run of the guest ends with (RESET in reset mode: one reset asked)."""
    image = image or hostile_image()
    out = bytearray()
    cfg = MachineConfig(memory=memory, cpus=cpus, serial_out=out.extend)
    cfg.log = lambda line: None
    started = time.monotonic()
    with Machine(cfg) as m:
        m.load(hostile_plan(image, seed=seed, ops=ops, memory=memory, cpus=cpus, mode=mode, reset_after=reset_after,
                            resets=1 if mode & MODE_RESET else 0))
        result = m.run(timeout)
    return HostileRun(result, bytes(out), time.monotonic() - started, 1, _parse(bytes(out)))


__all__ = ["HEALTHY", "MODE_RESET", "MODE_SWEEP", "Outcome", "hostile_image", "hostile_plan", "run_hostile",
           "run_hostile_machine"]

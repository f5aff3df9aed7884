"""Run a test guest through pyvmm's Python API and collect what a test asserts on."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from loaders.flat import flat_plan
from vmm.cpu_model import CpuModel
from vmm.machine import Machine, MachineConfig, RunResult

from .build import build


def fnv1a(data: bytes) -> int:
    """32-bit FNV-1a, the hash the C guests print (fnv1a in fwcfg.h, linux_probe.c) to prove bytes arrived."""
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


@dataclass
class GuestRun:
    result: RunResult
    serial: bytes
    exits: list[int]
    machine_memory: int

    @property
    def status(self) -> int:
        return self.result.status

    @property
    def text(self) -> str:
        return self.serial.decode(errors="replace")


def run_flat_guest(name: str, *, mode: str = "long", cpus: int = 1, memory: int = 64 << 20,
                   timeout: float = 20.0, serial_input: bytes = b"", defines: dict[str, int] | None = None,
                   trace: frozenset[str] = frozenset(), log=None, extra_sources: tuple[str, ...] = (),
                   fw_cfg=None, cpu: CpuModel = CpuModel()) -> GuestRun:
    """Compile tests/guests/<name> (+ extra_sources), load it as a flat image in `mode`, run to the end, return the
    outcome. fw_cfg: the machine's chipset.fw_cfg.FwCfgItems (default: the set pyvmm builds)."""
    load = 0x100000 if mode == "long" else 0x8000
    image = build(name, load_addr=load, code16=(mode == "real"), defines=defines, extra_sources=extra_sources)
    out = bytearray()
    lock = threading.Lock()

    def sink(data: bytes) -> None:
        with lock:
            out.extend(data)
    cfg = MachineConfig(memory=memory, cpus=cpus, serial_out=sink, trace=trace, fw_cfg=fw_cfg, cpu=cpu)
    if log is not None:
        cfg.log = log
    with Machine(cfg) as m:
        m.load(flat_plan(image, mode=mode, load_addr=load, cpus=cpus))
        if serial_input:
            m.serial_input(serial_input)
        result = m.run(timeout)
        exits = list(m.exit_counts)
    return GuestRun(result, bytes(out), exits, memory)


def run_rom(image: bytes, *, memory: int = 64 << 20, timeout: float = 20.0, trace: frozenset[str] = frozenset(),
            log=None, debugcon=None, milestones=None) -> GuestRun:
    """Boot a firmware ROM image as `pyvmm --bios` does: mapped to end at 4 GiB, VP 0 in the reset state."""
    from loaders.plan import LoadPlan, VpState
    out = bytearray()
    cfg = MachineConfig(memory=memory, serial_out=out.extend, trace=trace, firmware=image, debugcon=debugcon,
                        milestones=milestones)
    if log is not None:
        cfg.log = log
    with Machine(cfg) as m:
        m.load(LoadPlan(vps={0: VpState()}))
        result = m.run(timeout)
        exits = list(m.exit_counts)
    return GuestRun(result, bytes(out), exits, memory)

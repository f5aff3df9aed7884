"""vmfwupdate: reset-to-first-byte of an update to a 64 MiB IGVM, against a fresh launch of the same file.

Usage: python tests/bench/bench_vmfwupdate.py [--runs 5]

The IGVM: tests/guests/hello.S at 1 MiB (prints "Hello ..." and exits) plus 64 MiB of random page data at
256 MiB, 16,384 4-KiB PAGE_DATA headers, in a 1 GiB guest.
* fresh: `prepare_igvm` of the file on disk (mapped) and `vmm.launch.launch`, from before the prepare to the
  first COM1 chunk holding the "H" of the greeting (the in-process part of `pyvmm --igvm FILE`);
* update: the stage-1 guest of tests/guests/vmfwupdate.c reads the same file from fw_cfg to 32 MiB, requests
  it and resets through the i8042; from the reset request (Machine.request_stop with Outcome.RESET) to the same
  first chunk: the copy out of guest RAM, the full validation, the new machine and the apply included.
* spawn: `python -m vmm --igvm FILE -m 1G` from spawn to its first stdout byte (Python start-up included).
Rounds alternate fresh, update and spawn, each under two host memory states:
* warm: 512 MiB were faulted in and freed just before the timed part (for the update: when the guest's request is
  accepted, right before its reset), the same for the three paths;
* plain: nothing done between the runs. A path then gets whatever the run before it freed: on this host (a guest
  itself) memory freed a moment ago costs 0.3 ms per MiB to fault in again as huge pages, other memory 6-8 ms
  (an outer-host fault per page). The fresh launch follows a spawn that just freed its RAM; the update's stage-1
  guest has taken that memory by the time the update faults in its target pages.
Medians with (min-max).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from chipset.fw_cfg import FwCfgFile  # noqa: E402
from loaders.igvm import IgvmBuilder, Platform, VpContext  # noqa: E402
from loaders.igvm.pack import GDT_GPA, PAGE_TABLES_GPA, native_context_for, pack_flat_image  # noqa: E402
from loaders.x86 import flat_gdt, identity_page_tables  # noqa: E402
from tests.guests.build import build  # noqa: E402
from vmm import machine as machine_mod  # noqa: E402
from vmm.fw_cfg import fw_cfg_items  # noqa: E402
from vmm.igvm_source import IgvmSpec, prepare_igvm  # noqa: E402
from vmm.launch import launch  # noqa: E402
from vmm.machine import MachineConfig, Outcome  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
DATA_GPA = 256 * MiB


def big_igvm() -> bytes:
    b = IgvmBuilder()
    mask = b.platform(Platform.NATIVE)
    b.pages(GDT_GPA, flat_gdt()[0], mask)
    b.pages(PAGE_TABLES_GPA, identity_page_tables(PAGE_TABLES_GPA), mask)
    b.pages(0x100000, build("hello.S"), mask)
    b.pages(DATA_GPA, os.urandom(64 * MiB), mask)
    b.add(VpContext(0, mask, 0, native_context_for(0x100000)))
    return b.build()


class Clock:
    """The first COM1 chunk with the greeting's "H", and the first reset request, as perf_counter times."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.reset: float | None = None
        self.lock = threading.Lock()

    def sink(self, data: bytes) -> None:
        with self.lock:
            if self.first is None and b"H" in data:
                self.first = time.perf_counter()


WARM_BYTES = 512 * MiB


def warm_up() -> None:
    """Fault in and free WARM_BYTES of huge pages: the next allocations get memory the host already backs."""
    from kvm.mman import HostMapping
    m = HostMapping(WARM_BYTES, huge=True)
    m.populate()
    m.close()


def prepare(state: str) -> None:
    if state == "warm":
        warm_up()


def warm_at_request(state_ref: list) -> None:
    """In the warm state, warm up when the guest's request is accepted (before the reset request is stamped)."""
    from chipset.vmfwupdate import VmFwUpdate
    original = VmFwUpdate.written

    def written(self, offset, data):
        original(self, offset, data)
        if state_ref[0] == "warm" and self.pending() is not None:
            state_ref[0] = "done"
            warm_up()
    VmFwUpdate.written = written


def stamp_resets(clock_ref: list) -> None:
    original = machine_mod.Machine.request_stop

    def request_stop(self, outcome, status, message=""):
        c = clock_ref[0]
        if outcome is Outcome.RESET and c is not None and c.reset is None:
            c.reset = time.perf_counter()
        original(self, outcome, status, message)
    machine_mod.Machine.request_stop = request_stop


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:.1f} ms ({min(xs) * 1e3:.1f}-{max(xs) * 1e3:.1f})"


def run_fresh(path: Path, clock: Clock, state: str) -> float:
    config = MachineConfig(memory=GiB, serial_out=clock.sink)
    prepare(state)
    t0 = time.perf_counter()
    plan = prepare_igvm(IgvmSpec(str(path)), GiB, 1).plan
    result = launch(config, lambda m: plan, no_reboot=True, timeout=60)
    assert result.outcome is Outcome.EXIT and clock.first is not None, result
    return clock.first - t0


def run_update(stage1: bytes, big: bytes, clock: Clock, state: str, state_ref: list) -> float:
    state_ref[0] = state
    items = fw_cfg_items(GiB, 1, (FwCfgFile("opt/stage2", big),))
    config = MachineConfig(memory=GiB, serial_out=clock.sink, fw_cfg=items)
    plan = prepare_igvm(IgvmSpec("stage1"), GiB, 1, raw=stage1).plan
    result = launch(config, lambda m: plan, no_reboot=True, timeout=60)
    assert result.outcome is Outcome.EXIT and clock.first is not None and clock.reset is not None, result
    return clock.first - clock.reset


def run_spawn(path: Path, state: str) -> float:
    prepare(state)
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "vmm", "--igvm", str(path), "-m", "1G"], stdout=subprocess.PIPE,
                         cwd=ROOT)
    p.stdout.read(1)
    t = time.perf_counter() - t0
    p.stdout.read()
    p.wait()
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    big = big_igvm()
    stage1 = pack_flat_image(build("start64.S", extra_sources=("vmfwupdate.c",), defines={"STAGE": 1}))
    current: list = [None]
    state_ref: list = [None]
    stamp_resets(current)
    warm_at_request(state_ref)
    results = {(state, what): [] for state in ("warm", "plain") for what in ("fresh", "update", "spawn")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.igvm"
        path.write_bytes(big)
        for _ in range(a.runs):
            for state in ("warm", "plain"):
                current[0] = Clock()
                results[state, "fresh"].append(run_fresh(path, current[0], state))
                current[0] = Clock()
                results[state, "update"].append(run_update(stage1, big, current[0], state, state_ref))
                results[state, "spawn"].append(run_spawn(path, state))
    print(f"64 MiB IGVM ({len(big) / MiB:.1f} MiB file) into 1 GiB, to the first byte of its greeting "
          f"({a.runs} runs; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end):")
    for state in ("warm", "plain"):
        fresh, update, spawn = (results[state, w] for w in ("fresh", "update", "spawn"))
        print(f"  {state}:")
        print(f"    fresh launch (prepare + launch, in process): {fmt(fresh)}")
        print(f"    vmfwupdate (reset request -> first byte):    {fmt(update)}")
        print(f"    spawn `python -m vmm --igvm` -> first byte:  {fmt(spawn)}")
        print(f"    update / fresh: {statistics.median(update) / statistics.median(fresh):.2f}")

if __name__ == "__main__":
    main()

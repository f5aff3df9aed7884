"""A hostile guest (tests/guests/hostile.c) against the whole machine: seeded streams of port accesses on claimed
and unclaimed ports (every width, in/out, rep ins/outs), malformed fw_cfg DMA descriptors and resets in the middle of
DMA, on several vCPUs at once. The VMM must end every run with the guest's own status (never FATAL, never a hang),
and fw_cfg must still serve a good descriptor afterwards, which the guest itself checks.

This is the short version (seconds); tests/bench/campaign_guests.py runs millions of operations.
"""

import time

import pytest

from tests.hostile import HEALTHY, MODE_RESET, hostile_image, hostile_plan, run_hostile, run_hostile_machine
from vmm.machine import Machine, MachineConfig, Outcome

pytestmark = pytest.mark.usefixtures("kvm_ok", "toolchain_ok")


@pytest.mark.parametrize("seed,cpus", [(1, 1), (2, 2), (3, 3)])
def test_a_hostile_stream_leaves_the_vmm_and_fw_cfg_working(seed, cpus):
    ops = 400
    r = run_hostile(seed=seed, ops=ops, cpus=cpus, timeout=90)
    assert r.result.outcome is Outcome.EXIT, r.result
    assert r.status == HEALTHY, r.serial[-300:]
    c = r.counts
    assert c["ops"] == ops * cpus
    assert c["port"] + c["string"] + c["dma"] + c["fwread"] + c["vmfw"] == c["ops"]
    assert c["dma_ok"] > 0 and c["dma_err"] > 0, c        # both sides of the DMA checks were exercised


def test_the_stream_is_deterministic_for_a_seed():
    image = hostile_image()
    a = run_hostile_machine(seed=11, ops=300, cpus=1, image=image)
    b = run_hostile_machine(seed=11, ops=300, cpus=1, image=image)
    c = run_hostile_machine(seed=12, ops=300, cpus=1, image=image)
    assert a.status == b.status == c.status == HEALTHY
    assert a.counts == b.counts and a.counts != c.counts


def test_resets_in_the_middle_of_dma_relaunch_cleanly():
    """Four machines reset while every other vCPU fires DMA and random vmfwupdate requests (by 0xcf9, the i8042,
    port 0x92 or a triple fault, as the seed picks); each relaunch is a fresh machine, and the fifth runs its stream
    to the end."""
    r = run_hostile(seed=5, ops=300, cpus=3, resets=4, timeout=120)
    assert r.runs == 5
    assert r.status == HEALTHY, (r.result, r.serial[-300:])
    assert r.counts["vmfw"] > 0                                # random etc/vmfwupdate records were written...
    assert any("vmfwupdate: refused" in line for line in r.log), r.log    # ...and refused with a line, not a crash


def test_every_reset_method_the_guest_uses_ends_the_run_as_a_reset():
    image = hostile_image()
    seen = set()
    for seed in range(1, 40):
        r = run_hostile_machine(seed=seed, ops=50, cpus=2, mode=MODE_RESET, reset_after=seed % 50, image=image,
                                timeout=30)
        assert r.result.outcome is Outcome.RESET, (seed, r.result)
        seen.add(r.result.message.splitlines()[0])
        if len(seen) == 3:
            break
    # 0xcf9 and port 0x92 both say "guest reset"; the i8042 and the triple fault say so in their own words
    assert {"guest reset", "guest reset through the i8042"} <= seen and any("triple fault" in s for s in seen), seen


def test_port_0x92_bit_0_resets_as_on_qemu():
    with Machine(MachineConfig(memory=16 << 20, cpus=1)) as m:
        m.bus.write(0x92, 1, 0x02)
        assert m._result is None
        m.bus.write(0x92, 1, 0x03)
        assert m._result is not None and m._result.outcome is Outcome.RESET


def test_a_guest_hammering_forever_still_stops_at_the_timeout():
    image = hostile_image()
    with Machine(MachineConfig(memory=64 << 20, cpus=2)) as m:
        m.load(hostile_plan(image, seed=3, ops=0, memory=64 << 20, cpus=2))
        started = time.monotonic()
        r = m.run(1.5)
        took = time.monotonic() - started
    assert r.outcome is Outcome.TIMEOUT and r.status == 124
    assert 1.5 <= took < 5, took

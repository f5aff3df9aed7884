"""Writes KVM buffers in the coalesced ring instead of exiting: the POST code (0x80), the CMOS index (0x70) and the
debug console (0x402), besides COM1's THR. tests/guests/buffered_ports.c checks from inside a VM that every read
sees the writes before it; the host checks that the three zones' output keeps the guest's order, that the writes
did not exit, and that a machine without the ring (every write exits and is applied at once) gives the same."""

import threading

import pytest

from kvm.uapi import Cap
from loaders.flat import flat_plan
from tests.guests.build import build
from vmm.machine import Machine, MachineConfig, Outcome

COUNT = 1000
EXPECTED = {"post": (COUNT - 1) & 0xFF, "post_mixed": 0xAF, "cmos_d": 0x80, "cmos_40": 0x5A, "debugcon": 0xE9}


def run(no_ring: bool = False, monkeypatch=None) -> tuple[list[tuple[str, bytes]], list[int], bool]:
    """(the serial and debug-console output as (stream, byte) events in arrival order, exits per vCPU, ring used)."""
    if no_ring:
        from kvm.system import Kvm
        real = Kvm.check_extension
        monkeypatch.setattr(Kvm, "check_extension", lambda self, cap: 0 if cap == Cap.COALESCED_PIO else real(self, cap))
    image = build("start64.S", load_addr=0x100000, extra_sources=("buffered_ports.c",), defines={"COUNT": COUNT})
    events: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def sink(stream: str):
        def put(data: bytes) -> None:
            with lock:
                events.extend((stream, bytes([b])) for b in data)
        return put
    cfg = MachineConfig(memory=64 << 20, serial_out=sink("serial"), debugcon=sink("debugcon"))
    with Machine(cfg) as m:
        m.load(flat_plan(image, load_addr=0x100000))
        r = m.run(60)
        assert r.outcome == Outcome.EXIT and r.status == 1, (r, events)
        return events, list(m.exit_counts), m.writes.ring is not None


def facts(events) -> dict[str, int]:
    text = b"".join(b for s, b in events if s == "serial").decode()
    return {k: int(v, 16) for k, v in (line.split("=") for line in text.splitlines() if "=" in line)}


def test_reads_see_every_buffered_write_and_the_zones_keep_their_order(kvm_ok, toolchain_ok):
    events, exits, ringed = run()
    assert facts(events) == EXPECTED
    mixed = [(s, b) for s, b in events if s == "debugcon" or b"A" <= b <= b"P"]
    assert mixed == [pair for i in range(16) for pair in (("debugcon", bytes([97 + i])), ("serial", bytes([65 + i])))]
    if ringed:
        # COUNT POST codes and 48 mixed writes buffered: what exits is the LSR polls and reads of the kv lines
        assert sum(exits) < COUNT // 2, exits


def test_without_the_ring_every_write_exits_and_the_guest_sees_the_same(kvm_ok, toolchain_ok, monkeypatch):
    events, exits, ringed = run(no_ring=True, monkeypatch=monkeypatch)
    assert not ringed and facts(events) == EXPECTED
    assert sum(exits) > COUNT
    monkeypatch.undo()
    with_ring, exits_ringed, ringed = run()
    assert with_ring == events
    if not ringed:
        pytest.skip("this KVM cannot coalesce port I/O (KVM_CAP_COALESCED_PIO): both runs exited on every write")
    assert sum(exits_ringed) < sum(exits) - COUNT


def test_trace_exits_reports_the_writes_kvm_buffered(kvm_ok, toolchain_ok):
    """`--trace exits` tells a user which writes did not exit: every byte on COM1, each POST code, each CMOS index,
    each debug-console byte, counted where the ring is applied (independently of the guest's own count)."""
    image = build("start64.S", load_addr=0x100000, extra_sources=("buffered_ports.c",), defines={"COUNT": COUNT})
    serial, debug, log = bytearray(), bytearray(), []
    cfg = MachineConfig(memory=64 << 20, serial_out=serial.extend, debugcon=debug.extend, trace=frozenset({"exits"}))
    cfg.log = log.append
    with Machine(cfg) as m:
        m.load(flat_plan(image, load_addr=0x100000))
        assert m.run(60).status == 1
        if m.writes.ring is None:
            pytest.skip("this KVM cannot coalesce port I/O (KVM_CAP_COALESCED_PIO)")
        counts = dict(m.writes.counts)
    # a write that finds the ring full (170 entries) exits instead: at most one per 170 of the 1,000 in a row
    posts = counts.pop(0x80)
    assert COUNT + 16 - (COUNT // 170 + 1) <= posts <= COUNT + 16
    assert counts == {0x3F8: len(serial), 0x70: 4, 0x402: len(debug)} and len(debug) == 16
    line = next(x for x in log if "buffered instead of exiting" in x)
    assert f"0x80 POST code {posts:,}" in line and "0x70 CMOS/RTC 4" in line and "0x402 debug console 16" in line
    assert f"0x3f8 COM1 16550A {len(serial):,}" in line

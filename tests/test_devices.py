"""i8042, debug-exit, misc ports and the port bus, as guests and the run loop use them; hypothesis over all."""

import pytest
from hypothesis import given, settings, strategies as st

from chipset.bus import PortBus
from chipset.debug_exit import DebugExit
from chipset.i8042 import I8042
from chipset.misc_ports import FastA20, PostCode, ResetControl
from chipset.uart16550 import Uart16550


def test_linux_reboot_k_sequence_resets():
    resets = []
    k = I8042(reset=lambda: resets.append(1))
    for _ in range(3):                          # kb_wait(): input buffer empty
        assert not k.io_read(4, 1) & 0x02
    k.io_write(4, 1, 0xFE)
    assert resets == [1]


def test_i8042_probe_answers():
    k = I8042(reset=lambda: None)
    assert k.io_read(4, 1) != 0xFF              # a controller exists
    k.io_write(4, 1, 0xAA)
    assert k.io_read(4, 1) & 0x01 and k.io_read(0, 1) == 0x55
    k.io_write(4, 1, 0x20)
    ccb = k.io_read(0, 1)
    k.io_write(4, 1, 0x60)
    k.io_write(0, 1, ccb & ~0x01)
    k.io_write(4, 1, 0x20)
    assert k.io_read(0, 1) == ccb & ~0x01
    k.io_write(0, 1, 0xFF)                      # keyboard reset
    assert [k.io_read(0, 1), k.io_read(0, 1)] == [0xFA, 0xAA]
    assert not k.io_read(4, 1) & 0x01


def test_i8042_output_port_reset_and_irq():
    resets, levels = [], []
    k = I8042(reset=lambda: resets.append(1), irq=lambda line, lv: levels.append((line, lv)), line=1)
    k.io_write(0, 1, 0xF2)
    assert levels[-1] == (1, 1)
    while k.io_read(4, 1) & 1:
        k.io_read(0, 1)
    assert levels[-1] == (1, 0)
    k.io_write(4, 1, 0xD1)
    k.io_write(0, 1, 0x02)                      # bit 0 clear: CPU reset line asserted
    assert resets == [1]


@pytest.mark.parametrize("size,value,status", [(1, 0, 1), (1, 0x10, 0x21), (1, 0xFF, 0x1FF), (2, 0x1234, 0x2469)])
def test_debug_exit_status(size, value, status):
    got = []
    DebugExit(got.append).io_write(0, size, value)
    assert got == [status]


def test_misc_ports():
    resets = []
    p = PostCode()
    p.io_write(0, 1, 0x42)
    assert p.io_read(0, 1) == 0x42
    assert FastA20().io_read(0, 1) == 0x02
    FastA20(reset=lambda: resets.append("a20")).io_write(0, 1, 0x01)
    r = ResetControl(reset=lambda: resets.append("cf9"))
    r.io_write(0, 1, 0x02)
    r.io_write(0, 1, 0x06)
    assert resets == ["a20", "cf9"]


def _bus():
    seen = []
    b = PortBus(on_unknown=lambda *a: seen.append(a))
    out = bytearray()
    b.register(0x3F8, 8, Uart16550(output=out.extend), "COM1")
    b.register(0x60, 5, I8042(reset=lambda: None), "i8042")
    return b, seen, out


def test_bus_dispatch_unknown_ports_and_string_io():
    b, seen, out = _bus()
    buf = bytearray(4)
    b.pio(0x1234, 4, 1, False, memoryview(buf))
    assert buf == b"\xff" * 4
    b.pio(0x1234, 1, 1, True, memoryview(bytearray(b"\0")))
    assert seen == [(0x1234, False, 4)]          # logged once, on first touch
    b.pio(0x3F8, 1, 5, True, memoryview(bytearray(b"hello")))   # rep outsb
    assert out == b"hello"
    lsr = bytearray(3)
    b.pio(0x3FD, 1, 3, False, memoryview(lsr))                    # rep insb
    assert lsr == b"\x60\x60\x60"


def test_bus_rejects_overlaps_and_bad_ranges():
    b, _, _ = _bus()
    with pytest.raises(ValueError, match="overlaps COM1"):
        b.register(0x3FF, 2, PostCode(), "other")
    with pytest.raises(ValueError):
        b.register(0xFFFF, 2, PostCode(), "edge")
    assert [r[2] for r in b.registrations()] == ["i8042", "COM1"]


def test_a_device_registered_in_parts_sees_its_own_offsets():
    """The machine's i8042: its data port at 0x60 (offset 0), its status/command port at 0x64 (offset 4), and port
    0x61 between them left to the PIT."""
    b = PortBus()
    kbc = I8042(reset=lambda: None)
    b.register(0x60, 1, kbc, "i8042")
    b.register(0x64, 1, kbc, "i8042 status/command", offset=4)
    assert b.read(0x64, 1) == 0x14                 # the status register (system flag, unlocked), not the data port
    assert b.read(0x61, 1) == 0xFF
    b.register(0x61, 1, PostCode(), "port 0x61")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x3F8 + i for i in range(8)] + [0x60, 0x64, 0x61, 0x80, 0xF4]),
                          st.sampled_from([1, 2, 4]), st.booleans(), st.integers(0, 0xFFFFFFFF),
                          st.integers(1, 4)), max_size=200))
def test_random_port_traffic_never_breaks_the_devices(ops):
    levels = {4: [], 1: []}
    irq = lambda line, level: levels[line].append(level)  # noqa: E731
    b = PortBus()
    b.register(0x3F8, 8, Uart16550(irq=irq, line=4, output=lambda d: None), "COM1")
    b.register(0x60, 5, I8042(reset=lambda: None, irq=irq, line=1), "i8042")
    b.register(0xF4, 1, DebugExit(lambda s: None), "exit")
    for port, size, write, value, count in ops:
        buf = bytearray((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little") * count)
        b.pio(port, size, count, write, memoryview(buf))
        if not write:
            assert len(buf) == size * count
    for seq in levels.values():
        assert set(seq) <= {0, 1}
        assert all(a != b for a, b in zip(seq, seq[1:]))   # only level changes are signalled


class Recorder:
    """A device that notes every access and reads back a value derived from its name and the access."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log: list = []

    def io_read(self, offset: int, size: int) -> int:
        self.log.append(("r", offset, size))
        return (hash((self.name, offset)) & 0xFFFFFFFF) | 0x01010101

    def io_write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("w", offset, size, value))


def _through_cache(bus: PortBus, cache: dict, port: int, size: int, write: bool, value: int) -> int:
    """One single access the way bus.port_cache() says a run loop makes it: from the cache when its word is
    there, else once through pio() and then into the cache."""
    view = memoryview(bytearray(8)).cast({1: "B", 2: "H", 4: "I"}[size])
    mask = 0 if write else (1 << 8 * size) - 1
    word = (1 if write else 0) | size << 8 | port << 16 | 1 << 32
    if word in cache:
        method, off, size_, view_, i, mask_ = cache[word]
        assert (size_, mask_) == (size, mask)
        if write:
            if method is not None:
                method(off, size, value)
            return 0
        return mask if method is None else method(off, size) & mask
    data = bytearray(value.to_bytes(size, "little"))
    bus.pio(port, size, 1, write, memoryview(data))
    bus.cache_access(cache, word, port, write, size, view, 0, mask)
    return 0 if write else int.from_bytes(data, "little")


PORTS = st.integers(0x100, 0x10F)
OPS = st.lists(st.one_of(
    st.tuples(st.just("io"), PORTS, st.sampled_from([1, 2, 4]), st.booleans(), st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just("register"), PORTS, st.integers(1, 4)),
    st.tuples(st.just("unregister"), PORTS)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_a_port_cache_routes_every_access_as_the_bus_does_while_devices_come_and_go(ops):
    """Oracle: a twin bus with the same registrations, every access through pio() (no cache). Devices that come and
    go (the PIIX4 PM block moving, the lazy PIT leaving the bus) must never be reached through a stale entry."""
    unknown = [[], []]
    buses = [PortBus(on_unknown=lambda *a: unknown[0].append(a)), PortBus(on_unknown=lambda *a: unknown[1].append(a))]
    devices: list[list[Recorder]] = [[], []]
    cache = buses[0].port_cache()
    for n, op in enumerate(ops):
        if op[0] == "io":
            _, port, size, write, value = op
            value &= (1 << 8 * size) - 1
            cached = _through_cache(buses[0], cache, port, size, write, value)
            data = bytearray(value.to_bytes(size, "little"))
            buses[1].pio(port, size, 1, write, memoryview(data))
            assert cached == (0 if write else int.from_bytes(data, "little"))
        elif op[0] == "register":
            for k, bus in enumerate(buses):
                try:
                    dev = Recorder(f"dev{n}")
                    bus.register(op[1], op[2], dev, f"dev{n}")
                    devices[k].append(dev)
                except ValueError:
                    pass
        else:
            for bus in buses:
                try:
                    bus.unregister(op[1])
                except ValueError:
                    pass
    assert [d.log for d in devices[0]] == [d.log for d in devices[1]]
    assert unknown[0] == unknown[1]
    buses[0].drop_cache(cache)
    assert cache == {}


def test_a_guest_walking_every_port_fills_a_port_cache_only_to_its_limit():
    """A guest that reads every port at every width must not grow a vCPU's cache without bound; accesses past the
    limit still work, through pio()."""
    from chipset.bus import PORT_CACHE_LIMIT
    bus = PortBus()
    post = PostCode()
    bus.register(0x80, 1, post, "POST code")
    cache = bus.port_cache()
    for port in range(0x10000):
        for size in (1, 2):
            assert _through_cache(bus, cache, port, size, False, 0) == (0 if port == 0x80 else (1 << 8 * size) - 1)
    assert len(cache) == PORT_CACHE_LIMIT
    post.last = 0x42
    assert _through_cache(bus, cache, 0x80, 1, False, 0) == 0x42      # cached (port 0x80 came early)
    assert _through_cache(bus, cache, 0xFFF0, 2, False, 0) == 0xFFFF   # not cached: pio() every time

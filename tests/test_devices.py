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
    assert b.reports_unknown and not PortBus().reports_unknown   # the run loop skips the bus for none
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
    b.register(0x60, 1, I8042(reset=lambda: None), "i8042")
    b.register(0x64, 1, b.lookup_tables()[0][0x60][0], "i8042 status/command", offset=4)
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

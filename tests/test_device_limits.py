"""Device state a guest can grow stays bounded: the hostile-guest campaign found the i8042's output queue growing
by one entry per 0xd2 (write keyboard output buffer) + data pair, without limit. QEMU keeps 16 bytes
(hw/input/ps2.c, PS2_QUEUE_SIZE) and drops the rest; pyvmm now does the same."""

from hypothesis import given, settings, strategies as st

from chipset.i8042 import QUEUE, I8042

COMMAND, DATA = 4, 0


def test_a_looping_0xd2_guest_cannot_grow_the_queue():
    k = I8042(reset=lambda: None)
    for i in range(10_000):
        k.io_write(COMMAND, 1, 0xD2)
        k.io_write(DATA, 1, i & 0xFF)
    assert len(k.out) == QUEUE == 16
    assert [k.io_read(DATA, 1) for _ in range(QUEUE)] == list(range(QUEUE))   # the first bytes, later ones dropped
    assert k.io_read(COMMAND, 1) & 0x01 == 0                                # output buffer empty again


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([COMMAND, DATA]), st.booleans(), st.integers(0, 0xFF)), max_size=400))
def test_any_port_sequence_keeps_the_queue_bounded(ops):
    resets = []
    k = I8042(reset=lambda: resets.append(1))
    for port, write, value in ops:
        if write:
            k.io_write(port, 1, value)
        else:
            k.io_read(port, 1)
        assert len(k.out) <= QUEUE

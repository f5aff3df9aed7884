"""The coalesced ring reader against pages laid out by hand as <linux/kvm.h> describes them.

struct kvm_coalesced_mmio_ring { __u32 first, last; struct kvm_coalesced_mmio coalesced_mmio[]; } fills a page;
each entry is { __u64 phys_addr; __u32 len; __u32 pio; __u8 data[8]; } (24 bytes), so the ring holds
(4096 - 8) / 24 = 170 entries (KVM_COALESCED_MMIO_MAX).
"""

import struct
import threading

import pytest
from hypothesis import given, strategies as st

from kvm.coalesced import SLOTS, CoalescedRing

ENTRY = struct.Struct("<QII8s")


def ring_page(first: int, data: bytes, port: int = 0x3F8) -> memoryview:
    """A page whose ring holds one 1-byte PIO write per byte of data, starting at slot `first`."""
    page = bytearray(4096)
    for i, b in enumerate(data):
        slot = (first + i) % 170
        ENTRY.pack_into(page, 8 + 24 * slot, port, 1, 1, bytes([b]) + b"\xee" * 7)
    struct.pack_into("<II", page, 0, first, (first + len(data)) % 170)
    return memoryview(page)


def _no_other(addr, size, data):
    raise AssertionError(f"an entry at {addr:#x} in a ring of COM1 writes")


def test_the_ring_holds_what_the_kernel_header_says():
    assert SLOTS == 170


def test_drain_hands_over_bytes_in_order_and_consumes_them():
    page = ring_page(5, b"hello")
    ring = CoalescedRing(page)
    assert ring.pending()
    got = []
    assert ring.drain(0x3F8, got.append, _no_other) == 5
    assert got == [b"hello"]
    assert struct.unpack_from("<II", page) == (10, 10)   # first moved up to last: KVM may reuse the slots
    assert not ring.pending()
    assert ring.drain(0x3F8, got.append, _no_other) == 0 and got == [b"hello"]   # nothing pending: sink not called
    ring.close()


@given(first=st.integers(0, 169), data=st.binary(max_size=169))
def test_any_start_and_length_including_wrap_around(first, data):
    page = ring_page(first, data)
    ring = CoalescedRing(page)
    got = bytearray()
    assert ring.drain(0x3F8, got.extend, _no_other) == len(data)
    assert bytes(got) == data
    assert struct.unpack_from("<II", page)[0] == (first + len(data)) % 170
    ring.close()


def test_entries_appended_after_a_drain_are_read_next():
    page = ring_page(168, b"ab")                          # slots 168, 169
    ring = CoalescedRing(page)
    got = bytearray()
    ring.drain(0x3F8, got.extend, _no_other)
    for slot, b in ((0, b"c"), (1, b"d")):                # KVM appends at `last`, which wrapped to 0
        ENTRY.pack_into(page, 8 + 24 * slot, 0x3F8, 1, 1, b + b"\0" * 7)
    struct.pack_into("<I", page, 4, 2)
    ring.drain(0x3F8, got.extend, _no_other)
    assert bytes(got) == b"abcd"


def test_concurrent_drains_deliver_each_byte_once_in_order():
    page = ring_page(0, bytes(range(100)))
    ring = CoalescedRing(page)
    got = bytearray()
    threads = [threading.Thread(target=ring.drain, args=(0x3F8, got.extend, _no_other)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bytes(got) == bytes(range(100))


def test_a_ring_is_exactly_one_page():
    with pytest.raises(ValueError, match="4096-byte page"):
        CoalescedRing(memoryview(bytearray(4095)))


def test_close_releases_the_view_so_the_owner_can_unmap():
    buf = bytearray(4096)
    view = memoryview(buf)
    ring = CoalescedRing(view[0:4096])
    ring.close()
    view.release()
    buf.extend(b"x")          # raises BufferError while any view of buf is still exported


def test_a_vm_takes_its_coalesced_zones_out_before_its_fd_closes(kvm_ok, monkeypatch):
    """A zone left for KVM to drop with the VM made the VM's destruction (and so a pyvmm process's exit) wait 13-15 ms
    on the development host, twice the unregister (tests/bench/bench_vm_destroy.py): Vm.close() unregisters each
    zone it registered, the same zone, while the fd is still open; a zone the kernel no longer has is no error."""
    import kvm.vm as kvm_vm
    from kvm import Kvm
    from kvm.uapi import Ioctl
    calls = []
    real = kvm_vm.ioctl

    def spy(fd, request, arg, what):
        calls.append((request, (arg.addr, arg.size, arg.pio) if request == Ioctl.UNREGISTER_COALESCED_MMIO else None))
        return real(fd, request, arg, what)
    with Kvm() as kvm:
        vm = kvm.create_vm()
        vm.register_coalesced(0x3F8, 1, pio=True)
        vm.register_coalesced(0xE0000000, 8, pio=False)
        vm.register_coalesced(0x80, 1, pio=True)
        real(vm.fd, Ioctl.UNREGISTER_COALESCED_MMIO, vm._zones[2], "KVM_UNREGISTER_COALESCED_MMIO")   # gone already
        monkeypatch.setattr(kvm_vm, "ioctl", spy)
        vm.close()
    assert [z for r, z in calls if r == Ioctl.UNREGISTER_COALESCED_MMIO] == [(0x3F8, 1, 1), (0xE0000000, 8, 0),
                                                                             (0x80, 1, 1)]
    assert vm.fd == -1


# An entry: (phys_addr, len, data). The addresses include COM1 with a high byte set, which only an 8-byte
# compare tells from COM1.
ENTRIES = st.lists(st.tuples(st.sampled_from([0x3F8, 0x80, 0x70, 0x402, 0x3F8 | 1 << 40, 0xFED00000]),
                             st.integers(0, 12), st.binary(min_size=8, max_size=8)), max_size=169)


def mixed_page(first: int, entries) -> memoryview:
    page = bytearray(4096)
    for i, (addr, n, data) in enumerate(entries):
        ENTRY.pack_into(page, 8 + 24 * ((first + i) % 170), addr, n, 1, data)
    struct.pack_into("<II", page, 0, first, (first + len(entries)) % 170)
    return memoryview(page)


@given(first=st.integers(0, 169), entries=ENTRIES)
def test_drain_splits_the_ring_by_address_in_the_guests_order(first, entries):
    """Oracle: the ring read entry by entry as <linux/kvm.h> lays it out; COM1 entries give their first data byte,
    every other entry its `len` bytes (data holds 8: a larger len gives 8; len 0, which KVM never writes, nothing)."""
    want = [("com1", bytes(d[:1])) if a == 0x3F8 else ("other", a, d[:n]) for a, n, d in entries if n or a == 0x3F8]
    got = []

    def other(addr, size, data):          # a run of writes of one size to one address: split it back up
        assert len(data) % size == 0 and data
        got.extend(("other", addr, data[i:i + size]) for i in range(0, len(data), size))
    ring = CoalescedRing(mixed_page(first, entries))
    assert ring.drain(0x3F8, lambda b: got.extend(("com1", bytes([x])) for x in b), other) == len(entries)
    assert got == want and not ring.pending()
    ring.close()


def test_a_com1_only_ring_reaches_the_sink_in_one_call_per_span():
    got = []
    ring = CoalescedRing(ring_page(160, bytes(range(20))))     # slots 160-169, then 0-9
    ring.drain(0x3F8, got.append, _no_other)
    assert got == [bytes(range(10)), bytes(range(10, 20))]


def test_a_run_of_writes_to_one_port_arrives_as_one_call():
    calls = []
    entries = [(0x80, 1, bytes([i]) * 8) for i in range(5)] + [(0x3F8, 1, b"x" * 8)] + [(0x80, 1, b"\x09" * 8)]
    CoalescedRing(mixed_page(3, entries)).drain(0x3F8, lambda b: calls.append(("com1", b)),
                                                 lambda a, n, d: calls.append((a, n, d)))
    assert calls == [(0x80, 1, bytes(range(5))), ("com1", b"x"), (0x80, 1, b"\x09")]


def test_a_ring_with_indexes_past_its_slots_is_refused_not_read():
    page = ring_page(0, b"ab")
    struct.pack_into("<II", page, 0, 0, 500)
    with pytest.raises(ValueError, match="past its 170 slots"):
        CoalescedRing(page).drain(0x3F8, print, print)


def test_a_drain_waits_for_one_in_progress_before_it_returns():
    """The run loop drains before it handles an exit, so a read sees the writes before it: a drain that finds the
    ring already taken by another thread (the VMM's HLT drain) must not return until that drain has applied them."""
    page = mixed_page(0, [(0x70, 1, b"\x0d" * 8)])            # a CMOS index write
    ring = CoalescedRing(page)
    applying, release, applied = threading.Event(), threading.Event(), []

    def slow(addr, size, data):
        applying.set()
        release.wait(5)
        applied.append(data)
    other = threading.Thread(target=ring.drain, args=(0x3F8, _no_other, slow))
    other.start()
    assert applying.wait(5)
    late = threading.Thread(target=ring.drain, args=(0x3F8, _no_other, _no_other))
    late.start()
    late.join(0.2)
    assert late.is_alive() and applied == []          # still waiting: the index is not applied yet
    release.set()
    late.join(5)
    other.join(5)
    assert not late.is_alive() and applied == [b"\x0d"]

"""vmm.teardown: finished machines are closed off the caller's thread, in order, bounded, failures reported."""

from __future__ import annotations

import os
import threading

import pytest

from vmm import teardown


def test_closes_run_on_other_threads_and_drain_waits_for_them():
    done, threads = [], set()
    gate = threading.Event()

    def closer(i):
        def close():
            gate.wait(5)
            threads.add(threading.get_ident())
            done.append(i)
        return close
    teardown.close_later(closer(0))
    teardown.close_later(closer(1))
    assert teardown.pending() == 2 and done == []       # the caller did not wait for either
    gate.set()
    teardown.drain()
    assert sorted(done) == [0, 1]
    assert threading.get_ident() not in threads


def test_a_caller_faster_than_the_closes_waits_for_a_slot():
    gate = threading.Event()
    for _ in range(teardown.MAX_PENDING):
        teardown.close_later(lambda: gate.wait(5))
    third = threading.Thread(target=teardown.close_later, args=(lambda: None,))
    third.start()
    third.join(0.2)
    assert third.is_alive() and teardown.pending() == teardown.MAX_PENDING
    gate.set()
    third.join(5)
    teardown.drain()
    assert teardown.pending() == 0


def test_a_failed_close_is_raised_to_the_caller():
    def bad():
        raise OSError("close failed")
    teardown.close_later(bad)
    with pytest.raises(OSError, match="close failed"):
        teardown.drain()
    teardown.drain()                                     # reported once


def test_run_igvm_leaves_no_file_descriptor_open_once_drained(kvm_ok):
    from loaders.igvm.pack import pack_flat_image
    from vmm.api import run_igvm
    image = pack_flat_image(b"\xb0\x00\xe6\xf4")        # mov $0, %al; out %al, $0xf4: debug exit 0
    run_igvm(image, memory="64M")
    teardown.drain()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        assert run_igvm(image, memory="64M").status == 1
    teardown.drain()
    assert len(os.listdir("/proc/self/fd")) == before

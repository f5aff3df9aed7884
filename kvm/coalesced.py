"""The coalesced MMIO/PIO ring that KVM shares through a vCPU's mmap (struct kvm_coalesced_mmio_ring).

For a zone registered with KVM_REGISTER_COALESCED_MMIO, KVM appends one kvm_coalesced_mmio entry per guest write
at `last` instead of exiting to the VMM; the VMM consumes entries from `first` and advances `first`. The ring fills
one page; when it is full KVM exits normally, so nothing is lost (Linux virt/kvm/coalesced_mmio.c,
Documentation/virt/kvm/api.rst "KVM_REGISTER_COALESCED_MMIO").
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

from .uapi import PAGE_SIZE, field_offset, kvm_coalesced_mmio, kvm_coalesced_mmio_ring

HEADER = ctypes.sizeof(kvm_coalesced_mmio_ring)
ENTRY = ctypes.sizeof(kvm_coalesced_mmio)
SLOTS = (PAGE_SIZE - HEADER) // ENTRY            # KVM_COALESCED_MMIO_MAX
_DATA0 = HEADER + field_offset(kvm_coalesced_mmio, "data")[0]   # entry 0's data[0] within the page
_FIRST = field_offset(kvm_coalesced_mmio_ring, "first")[0] // 4
_LAST = field_offset(kvm_coalesced_mmio_ring, "last")[0] // 4


class CoalescedRing:
    """A reader of the ring page; owns the views it makes of it (close() before the page is unmapped)."""

    def __init__(self, page: memoryview) -> None:
        if len(page) != PAGE_SIZE:
            raise ValueError(f"a coalesced ring is one {PAGE_SIZE}-byte page, not {len(page)} bytes")
        self._page = page
        # (first, last) as u32s: the run loop tests head[0] != head[1] after each exit, which costs no call.
        self.head = page[:HEADER].cast("I")
        self._lock = threading.Lock()

    def pending(self) -> bool:
        """True when KVM has appended entries the VMM has not consumed."""
        return self.head[_FIRST] != self.head[_LAST]

    def drain_bytes(self, sink: Callable[[bytes], None]) -> int:
        """Consume every pending entry and hand `sink` their first data bytes, in ring order; the count.

        Meant for zones written one byte at a time (a UART's transmit register). Any thread may call it: drains
        are serialized and `sink` runs under the lock, so bytes reach it in the guest's order.
        """
        head = self.head
        with self._lock:
            first, last = head[_FIRST], head[_LAST]
            if first == last:
                return 0
            page = self._page
            if first < last:
                chunk = bytes(page[_DATA0 + first * ENTRY:_DATA0 + last * ENTRY:ENTRY])
            else:                                  # wrapped: first..the end, then 0..last
                chunk = bytes(page[_DATA0 + first * ENTRY:_DATA0 + SLOTS * ENTRY:ENTRY]) + \
                    bytes(page[_DATA0:_DATA0 + last * ENTRY:ENTRY])
            head[_FIRST] = last
            sink(chunk)
            return len(chunk)

    def close(self) -> None:
        """Release the views (the page's owner unmaps it afterwards)."""
        if self._page is not None:
            self.head.release()
            self._page.release()
            self._page = None

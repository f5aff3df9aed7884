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
# Entry k's phys_addr and len as indexes of the page seen as u64s and as u32s (HEADER and ENTRY are multiples of 8).
_ADDR_Q, _ENTRY_Q = (HEADER + field_offset(kvm_coalesced_mmio, "phys_addr")[0]) // 8, ENTRY // 8
_LEN_I, _ENTRY_I = (HEADER + field_offset(kvm_coalesced_mmio, "len")[0]) // 4, ENTRY // 4
_DATA_SIZE = field_offset(kvm_coalesced_mmio, "data")[1]
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
        self._u64, self._u32 = page.cast("Q"), page.cast("I")
        self._same: dict[int, bytes] = {}     # addr -> its 8 bytes once per slot: a span whose entries are all at addr

    def pending(self) -> bool:
        """True when KVM has appended entries the VMM has not consumed."""
        return self.head[_FIRST] != self.head[_LAST]

    def drain(self, addr: int, sink: Callable[[bytes], None], other: Callable[[int, int, bytes], None]) -> int:
        """Consume every pending entry in ring order: the first data bytes of entries written to `addr` (a UART's
        transmit register) go to sink(bytes); other entries go to other(phys_addr, size, data), where a run of
        consecutive entries at one address with one `len` (at most 8) arrives as one call whose data holds each
        entry's `size` bytes in turn, as a string write would. The count of entries.

        A span of entries all at `addr` costs two strided copies and a compare (the serial path: a list of the
        addresses cost 6 µs a drain more); a mixed span reads the addresses and lengths as lists and takes a
        Python step per run of entries, not per entry. Serialized by a lock (a vCPU and the VMM's HLT drain may
        both call it): entries reach sink and other in the order the guest wrote them, and a call that finds
        nothing left returns only after a drain in progress on another thread has applied what it took.
        """
        head = self.head
        with self._lock:
            first, last = head[_FIRST], head[_LAST]
            if first == last:
                return 0
            if first >= SLOTS or last >= SLOTS:        # KVM keeps both below SLOTS; anything else is not its ring
                raise ValueError(f"coalesced ring indexes {first}, {last} past its {SLOTS} slots")
            head[_FIRST] = last
            page, u64, u32, n = self._page, self._u64, self._u32, 0
            same = self._same.get(addr)
            if same is None:
                same = self._same[addr] = addr.to_bytes(8, "little") * SLOTS
            for a, b in ((first, last),) if first < last else ((first, SLOTS), (0, last)):
                span = u64[_ADDR_Q + a * _ENTRY_Q:_ADDR_Q + b * _ENTRY_Q:_ENTRY_Q]      # the entries' phys_addr
                if span.tobytes() == same[:8 * (b - a)]:
                    sink(bytes(page[_DATA0 + a * ENTRY:_DATA0 + b * ENTRY:ENTRY]))
                    n += b - a
                    continue
                addrs = span.tolist()
                lens = u32[_LEN_I + a * _ENTRY_I:_LEN_I + b * _ENTRY_I:_ENTRY_I].tolist()
                i, m = 0, b - a
                while i < m:
                    at, size = addrs[i], min(lens[i], _DATA_SIZE)
                    j = i + 1
                    while j < m and addrs[j] == at and lens[j] == lens[i]:
                        j += 1
                    base = _DATA0 + (a + i) * ENTRY
                    if at == addr:                         # a 1-byte zone: KVM buffers only 1-byte writes there
                        sink(bytes(page[base:base + (j - i) * ENTRY:ENTRY]))
                    elif size == 0:                        # KVM writes 1-8; an empty write changes nothing
                        pass
                    elif size == 1:
                        other(at, 1, bytes(page[base:base + (j - i) * ENTRY:ENTRY]))
                    else:
                        other(at, size, b"".join(page[o:o + size] for o in range(base, base + (j - i) * ENTRY, ENTRY)))
                    i = j
                n += m
            return n

    def close(self) -> None:
        """Release the views (the page's owner unmaps it afterwards)."""
        if self._page is not None:
            self.head.release()
            self._u64.release()
            self._u32.release()
            self._page.release()
            self._page = None

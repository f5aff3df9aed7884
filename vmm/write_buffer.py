"""Guest port writes that KVM buffers in the coalesced ring instead of exiting, and their application.

COM1's transmit register, and the ports whose writes no one sees before a later access of the same device or the
end of the run: the POST code (Linux's io_delay writes it around every slow port access), the CMOS index (QEMU
buffers it too, hw/rtc/mc146818rtc.c "rtc-index") and the debug console. KVM appends each such one-byte write to
the ring (KVM_REGISTER_COALESCED_MMIO with pio = 1, Documentation/virt/kvm/api.rst); the run loop applies the ring,
in the guest's order, before it handles the next exit, so a read of a device always sees the writes before it.
"""

from __future__ import annotations

from collections.abc import Callable

from chipset.bus import PortBus
from kvm.coalesced import CoalescedRing
from kvm.uapi import Cap


class WriteBuffer:
    """The ports whose writes KVM buffers, the ring once open(), and counts of the writes applied from it."""

    def __init__(self, bus: PortBus, com1: int, transmit: Callable[[bytes], None], count_com1: bool) -> None:
        self.bus = bus
        self.com1 = com1
        self.ports: set[int] = set()           # buffered besides COM1, applied through the bus
        self.counts: dict[int, int] = {}       # port -> writes applied from the ring (COM1's only with count_com1)
        self.ring: CoalescedRing | None = None
        # COM1's writes are the ring's busiest, so they are counted only when asked (--trace exits)
        self.sink = self._counted(transmit) if count_com1 else transmit

    def add(self, port: int) -> None:
        """Buffer the guest's one-byte writes to `port` (registered on the bus) once the ring is open."""
        self.ports.add(port)

    def open(self, kvm, vm) -> None:
        """Register COM1's zone and each added port's with KVM and open the ring; where KVM cannot coalesce port
        I/O there is no ring, and every one of those writes exits and reaches its device at once."""
        ring_page = kvm.check_extension(Cap.COALESCED_MMIO)
        if ring_page and kvm.check_extension(Cap.COALESCED_PIO):
            for port in (self.com1, *sorted(self.ports)):
                vm.register_coalesced(port, 1, pio=True)
            self.ring = vm.open_coalesced_ring(ring_page)

    def drain(self) -> None:
        """Apply every write in the ring, in order; waits for a drain in progress on another thread, so the
        caller's next access sees everything taken before it (the run loop calls this before each exit)."""
        self.ring.drain(self.com1, self.sink, self._apply)

    def drain_pending(self) -> None:
        """drain() if the ring holds anything, without taking its lock otherwise (the periodic drain while vCPUs
        sit in HLT, and the last one after a run)."""
        if self.ring is not None and self.ring.pending():
            self.drain()

    def close(self) -> None:
        """Forget the ring (its VM closes it)."""
        self.ring = None

    def report(self) -> str:
        """The writes applied from the ring, per port and device (--trace exits)."""
        names = {port: name for base, n, name in self.bus.registrations() for port in range(base, base + n)
                 if port in self.counts}
        parts = [f"{port:#x} {names.get(port, '?')} {count:,}" for port, count in sorted(self.counts.items())]
        return "pyvmm: trace: writes KVM buffered instead of exiting: " + (", ".join(parts) or "none")

    def _apply(self, port: int, size: int, data: bytes) -> None:
        """Writes of `size` bytes to `port`, one after another in `data`, applied as a string write (a device with
        io_write_string takes them in one call)."""
        if port in self.ports:
            count = len(data) // size
            self.counts[port] = self.counts.get(port, 0) + count
            self.bus.pio(port, size, count, True, data)

    def _counted(self, transmit: Callable[[bytes], None]) -> Callable[[bytes], None]:
        counts, port = self.counts, self.com1

        def counted(data: bytes) -> None:
            counts[port] = counts.get(port, 0) + len(data)
            transmit(data)
        return counted

"""A KVM virtual machine: memory slots, TSS/identity map, in-kernel irqchip and PIT, IRQ lines, coalesced zones."""

import os
import threading

from . import uapi
from .coalesced import CoalescedRing
from .ioctl import ioctl
from .uapi import Ioctl


class Vm:
    """One VM fd. Closed by close() or the context manager, after its vCPUs."""

    def __init__(self, kvm: "Kvm") -> None:  # noqa: F821
        self.kvm = kvm
        self.fd = -1
        self.vcpus = []
        self.coalesced_ring: CoalescedRing | None = None
        self.fd = ioctl(kvm.fd, Ioctl.CREATE_VM, 0, "KVM_CREATE_VM")
        self.vcpus: list["Vcpu"] = []  # noqa: F821
        self._irq_level = uapi.kvm_irq_level()
        self._irq_lock = threading.Lock()
        self._slots = 0
        self._zones: list[uapi.kvm_coalesced_mmio_zone] = []

    def set_user_memory_region(self, slot: int, gpa: int, size: int, host_addr: int, flags: int = 0) -> None:
        r = uapi.kvm_userspace_memory_region(slot, flags, gpa, size, host_addr)
        ioctl(self.fd, Ioctl.SET_USER_MEMORY_REGION, r, "KVM_SET_USER_MEMORY_REGION")

    def add_memory(self, gpa: int, size: int, host_addr: int, readonly: bool = False) -> int:
        """Map host memory at a GPA in the next free slot; returns the slot number."""
        slot = self._slots
        self.set_user_memory_region(slot, gpa, size, host_addr, uapi.MEM_READONLY if readonly else 0)
        self._slots += 1
        return slot

    def set_tss_addr(self, addr: int) -> None:
        ioctl(self.fd, Ioctl.SET_TSS_ADDR, addr, "KVM_SET_TSS_ADDR")

    def set_identity_map_addr(self, addr: int) -> None:
        import ctypes
        v = ctypes.c_uint64(addr)
        ioctl(self.fd, Ioctl.SET_IDENTITY_MAP_ADDR, v, "KVM_SET_IDENTITY_MAP_ADDR")

    def create_irqchip(self) -> None:
        ioctl(self.fd, Ioctl.CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP")

    def set_gsi_routing(self, routes: list[tuple[int, int, int]]) -> None:
        """Replace KVM's GSI table with (gsi, irqchip, pin) routes; irqchip is uapi.IRQCHIP_PIC_MASTER/SLAVE/IOAPIC."""
        table = uapi.kvm_irq_routing(len(routes))
        table.nr = len(routes)
        for e, (gsi, chip, pin) in zip(table.entries, routes):
            e.gsi, e.type, e.irqchip, e.pin = gsi, uapi.IRQ_ROUTING_IRQCHIP, chip, pin
        ioctl(self.fd, Ioctl.SET_GSI_ROUTING, table, "KVM_SET_GSI_ROUTING")

    def create_pit2(self, flags: int = uapi.PIT_SPEAKER_DUMMY) -> None:
        """The in-kernel 8254 at ports 0x40-0x43 (and with PIT_SPEAKER_DUMMY port 0x61); needs the irqchip. KVM
        takes it while vCPUs exist and run (arch/x86/kvm/x86.c KVM_CREATE_PIT2 checks only the irqchip)."""
        cfg = uapi.kvm_pit_config(flags)
        ioctl(self.fd, Ioctl.CREATE_PIT2, cfg, "KVM_CREATE_PIT2")

    def get_pit2(self) -> uapi.kvm_pit_state2:
        s = uapi.kvm_pit_state2()
        ioctl(self.fd, Ioctl.GET_PIT2, s, "KVM_GET_PIT2")
        return s

    def set_pit2(self, s: uapi.kvm_pit_state2) -> None:
        """Replace the PIT's state. KVM then reloads every counter with its `count` (arch/x86/kvm/x86.c
        kvm_vm_ioctl_set_pit2): count_load_time becomes now, and channel 0's timer restarts in modes 0-4."""
        ioctl(self.fd, Ioctl.SET_PIT2, s, "KVM_SET_PIT2")

    def irq_line(self, irq: int, level: int) -> None:
        """Drive a GSI; callable from any thread (devices get this as their irq callable)."""
        with self._irq_lock:
            self._irq_level.irq = irq
            self._irq_level.level = level
            ioctl(self.fd, Ioctl.IRQ_LINE, self._irq_level, "KVM_IRQ_LINE")

    def register_coalesced(self, addr: int, size: int, pio: bool) -> None:
        """Have KVM buffer writes to [addr, addr+size) in the shared ring instead of exiting."""
        zone = uapi.kvm_coalesced_mmio_zone(addr, size, 1 if pio else 0)
        ioctl(self.fd, Ioctl.REGISTER_COALESCED_MMIO, zone, "KVM_REGISTER_COALESCED_MMIO")
        self._zones.append(zone)

    def open_coalesced_ring(self, page_offset: int) -> CoalescedRing:
        """The VM's coalesced ring, seen through vCPU 0's mmap at `page_offset` pages (the value KVM_CHECK_EXTENSION
        returns for KVM_CAP_COALESCED_MMIO); the VM closes it before its vCPUs."""
        if self.coalesced_ring is None:
            start = page_offset * uapi.PAGE_SIZE
            self.coalesced_ring = CoalescedRing(self.vcpus[0].page.view[start:start + uapi.PAGE_SIZE])
        return self.coalesced_ring

    def create_vcpu(self, index: int) -> "Vcpu":  # noqa: F821
        from .vcpu import Vcpu
        v = Vcpu(self, index)
        self.vcpus.append(v)
        return v

    def close(self) -> None:
        if self.coalesced_ring is not None:
            self.coalesced_ring.close()
            self.coalesced_ring = None
        for v in self.vcpus:
            v.close()
        self.vcpus.clear()
        if self.fd >= 0:
            # Coalesced zones taken out first: a VM destroyed with a zone still registered took 13-15 ms to close on
            # the development host (nested kvm_pvm), against 7 ms for the unregister (an expedited SRCU grace period)
            # plus 0.4 ms for the close (tests/bench/bench_vm_destroy.py).
            for zone in self._zones:
                try:
                    ioctl(self.fd, Ioctl.UNREGISTER_COALESCED_MMIO, zone, "KVM_UNREGISTER_COALESCED_MMIO")
                except OSError:
                    pass                 # closing anyway: the kernel frees the zone with the VM
            self._zones.clear()
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Vm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            self.close()

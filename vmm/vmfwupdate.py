"""The reset half of vmfwupdate: turn the image a guest named in etc/vmfwupdate into the firmware it boots next.

vmm.launch calls Firmware.update after every vCPU thread has ended, so the guest cannot change the image any
more and nothing of the old boot (kvmclock, steal time, async PF, PV EOI pages: KVM writes them from a running
vCPU) writes guest RAM; the old VM closes meanwhile, and is closed before the new firmware runs. The image gets
the same validation as `pyvmm --igvm` (strict reader, a platform pyvmm launches, parameter areas filled for this machine, every target inside RAM, required memory within -m), plus
the rule agreed on qemu-devel for vmfwupdate: no target page may overlap the buffer the image was read from,
even though pyvmm copies it, so that images stay portable to hypervisors that do not bounce.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable

from loaders.errors import LoadError
from loaders.plan import LoadPlan

IMAGE_NAME = "vmfwupdate image"
STEP = 16 << 20              # bytes faulted in at a time in huge pages, to see whether the kernel has them at hand
SLOW_STEP = 0.05             # seconds: 16 MiB of huge pages take 4-8 ms when it does, 100 ms or more when it does not


def fault_in(copy) -> None:
    """Fault in a kvm.mman.HostMapping made with huge=True: in 2 MiB pages while the kernel has them at hand (32
    faults for 64 MiB, 0.3 ms a MiB here), and in 4 KiB pages (1.2 ms a MiB) from the first STEP bytes that were
    slow. A huge page the kernel must compact for, or, in a guest host with free page reporting (a virtio-balloon,
    as here), memory the outer host has taken back and must fault in again, costs 6-15 ms each, and this thread's
    CPU time does not show it: each step is timed on the wall clock, the threshold leaving room for the GIL that
    the step's end waits for (5 ms a switch) and for other processes."""
    for offset in range(0, copy.size, STEP):
        t = time.perf_counter()
        copy.populate(offset, STEP)
        if time.perf_counter() - t > SLOW_STEP and offset + STEP < copy.size:
            copy.no_huge_pages(offset + STEP)
            copy.populate(offset + STEP)
            return


def plan_update(image: bytes | memoryview, addr: int, size: int, memory: int, cpus: int) -> LoadPlan:
    """The filled, checked plan of the new firmware; LoadError naming why it is refused."""
    from .igvm_source import IgvmSpec, prepare_igvm
    plan = prepare_igvm(IgvmSpec(IMAGE_NAME), memory, cpus, raw=image).plan
    end = addr + size
    for start, stop, what in plan.ranges():
        if start < end and addr < stop:
            raise LoadError(f"{IMAGE_NAME}: {what} at {start:#x}-{stop:#x} overlaps the image's own buffer "
                            f"{addr:#x}-{end:#x} (fw_image_addr/fw_image_size)")
    return plan


class Firmware:
    """What a launch boots: the plan it was given, until an accepted update replaces it for good (until the
    process ends). An update's host copy of the image is kept for the later resets that re-apply it."""

    def __init__(self, make_plan: Callable[[], LoadPlan], memory: int, cpus: int,
                 log: Callable[[str], None]) -> None:
        self._make = make_plan
        self.memory, self.cpus, self.log = memory, cpus, log
        self._plan: LoadPlan | None = None
        self._once = False                  # _plan reads guest RAM: good for the load right after the update only
        self._copy = None                   # kvm.mman.HostMapping of the current update's image
        self._request: tuple[int, int] | None = None
        self._copier: threading.Thread | None = None   # the copy of the latest update, until settle()

    def plan(self) -> LoadPlan:
        """The plan for the next boot."""
        if self._plan is None:
            self._plan = (self._make() if self._copy is None else
                          plan_update(self._copy.view, *self._request, self.memory, self.cpus))
        plan = self._plan
        if self._once:
            self._plan, self._once = None, False
        return plan

    def update(self, guest, addr: int, size: int) -> bool:
        """Validate the image at [addr, addr+size) of guest RAM (a vmm.memory.GuestMemory no vCPU runs on any more)
        and make it the firmware; False after one stderr line naming why it is refused.

        A thread copies the image out (memmove drops the GIL) while this validates it in place; the first boot
        applies the page data straight from guest RAM, which no target overlaps, so the copy (kept for later
        resets) overlaps the validation, the new machine and the apply: settle() waits for it before the new
        firmware runs and can change the buffer."""
        from kvm.mman import HostMapping
        self.settle()
        source = guest.host_address(addr, size)
        copy = HostMapping(size, what="vmfwupdate image copy", huge=True)

        def copy_out() -> None:
            fault_in(copy)                  # a few calls, not a page fault per page
            ctypes.memmove(copy.addr, source, size)
        self._copier = threading.Thread(target=copy_out, name="vmfwupdate-copy", daemon=True)
        self._copier.start()
        image = memoryview((ctypes.c_char * size).from_address(source)).cast("B")   # file offset 0 = index 0
        try:
            plan = plan_update(image, addr, size, self.memory, self.cpus)
        except (LoadError, ValueError) as e:
            self.log(f"pyvmm: vmfwupdate: update refused: {e}; plain reset with the current firmware")
            self.settle()
            copy.close()
            return False
        old = self._copy
        self._plan, self._once, self._copy, self._request = plan, True, copy, (addr, size)
        if old is not None:
            old.close()                     # its plan was dropped above
        return True

    def settle(self) -> None:
        """Wait for the image copy an update started; the new firmware must not run before it is complete."""
        if self._copier is not None:
            self._copier.join()
            self._copier = None

    def close(self) -> None:
        self.settle()
        self._plan = None
        if self._copy is not None:
            self._copy.close()
            self._copy = None

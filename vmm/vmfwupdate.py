"""The reset half of vmfwupdate: turn the image a guest named in etc/vmfwupdate into the firmware it boots next.

vmm.launch calls Firmware.update after every vCPU thread has ended and the machine's VM is closed, so the guest
cannot change the image any more and nothing of the old boot (kvmclock, steal time, async PF, PV EOI pages)
writes guest RAM. The image gets the same validation as `pyvmm --igvm` (strict reader, a platform pyvmm
launches, parameter areas filled for this machine, every target inside RAM, required memory within -m), plus
the rule agreed on qemu-devel for vmfwupdate: no target page may overlap the buffer the image was read from,
even though pyvmm copies it, so that images stay portable to hypervisors that do not bounce.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

from loaders.errors import LoadError
from loaders.plan import LoadPlan

IMAGE_NAME = "vmfwupdate image"


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
        """Validate the image at [addr, addr+size) of guest RAM (a vmm.memory.GuestMemory no VM uses any more)
        and make it the firmware; False after one stderr line naming why it is refused.

        The image is read in place while a thread copies it (memmove drops the GIL), so the copy kept for later
        resets costs the update little time; the first boot applies the page data straight from guest RAM,
        which no target overlaps."""
        from kvm.mman import HostMapping
        source = guest.host_address(addr, size)
        copy = HostMapping(size, what="vmfwupdate image copy")

        def copy_out() -> None:
            copy.populate()                 # one call, not a page fault per page
            ctypes.memmove(copy.addr, source, size)
        copier = threading.Thread(target=copy_out, name="vmfwupdate-copy", daemon=True)
        copier.start()
        image = memoryview((ctypes.c_char * size).from_address(source)).cast("B")   # file offset 0 = index 0
        try:
            plan = plan_update(image, addr, size, self.memory, self.cpus)
        except (LoadError, ValueError) as e:
            self.log(f"pyvmm: vmfwupdate: update refused: {e}; plain reset with the current firmware")
            plan = None
        finally:
            copier.join()
        if plan is None:
            copy.close()
            return False
        old = self._copy
        self._plan, self._once, self._copy, self._request = plan, True, copy, (addr, size)
        if old is not None:
            old.close()                     # its plan was dropped above
        return True

    def close(self) -> None:
        self._plan = None
        if self._copy is not None:
            self._copy.close()
            self._copy = None

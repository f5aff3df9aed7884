"""The reset half of vmfwupdate: turn the image a guest named in etc/vmfwupdate into the next boot's plan.

Called by vmm.launch after every vCPU has stopped, with the image already copied out of guest RAM (the guest
can no longer change it). The image gets the same validation as `pyvmm --igvm` (strict reader, a platform
pyvmm launches, parameter areas filled for this machine, every target inside RAM, required memory within -m),
plus the rule agreed on qemu-devel for vmfwupdate: no target page may overlap the buffer the image was read
from, even though pyvmm copied it, so that images stay portable to hypervisors that do not bounce.
"""

from __future__ import annotations

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

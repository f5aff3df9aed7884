"""vmfwupdate: the fw_cfg file `etc/vmfwupdate` through which a running guest hands the VMM a new IGVM firmware.

The interface is the last one proposed on qemu-devel ("[PATCH v6] hw/misc/vmfwupdate: Introduce hypervisor
fw-cfg interface support", Gerd Hoffmann's 2025-04-08 IGVM-only draft), with a u64 size:

    offset 0   u64 capabilities   read-only; bit 32 FORMAT_IGVM
    offset 8   u64 control        bit 0 DISABLE, bit 32 FORMAT_IGVM (the format of the image)
    offset 16  u64 fw_image_addr  guest-physical address of the IGVM file
    offset 24  u64 fw_image_size  its size in bytes

all little-endian. The guest writes the file with fw_cfg DMA WRITE (any offset, any length inside it); the
device keeps a shadow of what it accepted and copies it back over the guest-visible bytes after every write, so
a read returns the accepted values (Gerd's shadow-struct pattern from the v6 review). This module only decides
what is accepted; the reset that launches the image lives in vmm.vmfwupdate.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable

from .fw_cfg import FwCfgFile

FILE_NAME = "etc/vmfwupdate"
LAYOUT = struct.Struct("<QQQQ")            # capabilities, control, fw_image_addr, fw_image_size
SIZE = LAYOUT.size                         # 32
FORMAT_IGVM = 1 << 32
DISABLE = 1 << 0
CONTROL_BITS = DISABLE | FORMAT_IGVM
CAPABILITIES = FORMAT_IGVM
MAX_IMAGE = 256 << 20                      # a firmware image is at most this (and at most the guest's RAM)
CONTROL_FIELD = range(8, 16)
IMAGE_FIELDS = range(16, 32)
SIZE_FIELD = range(24, 32)
LOG_INTERVAL = 1.0                         # seconds between two refusal lines on stderr


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class VmFwUpdate:
    """The device model: the accepted request and the rules that decide it. No KVM, no guest memory access.

    ram: the machine's RAM ranges (gpa, size); the image must lie inside one of them, never across the MMIO
    hole. A failed write-time check is logged (at most one line per LOG_INTERVAL, so a guest retrying in a
    loop cannot flood stderr) and the fields it concerned read back 0.
    """

    def __init__(self, ram: list[tuple[int, int]], log: Callable[[str], None] = _stderr,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ram = sorted(ram)
        self.ram_size = sum(size for _, size in ram)
        self.max_size = min(self.ram_size, MAX_IMAGE)
        self.log = log
        self.clock = clock
        self._last_log: float | None = None
        self._suppressed = 0
        self.control = self.addr = self.size = 0
        self.buffer = bytearray(self.encode())   # the guest-visible bytes fw_cfg serves (file())

    # --- what the reset path asks -----------------------------------------------------
    def pending(self) -> tuple[int, int] | None:
        """(fw_image_addr, fw_image_size) of an accepted request, or None (plain reset)."""
        if self.control & DISABLE or not self.control & FORMAT_IGVM or not self.size:
            return None
        return self.addr, self.size

    def encode(self) -> bytes:
        return LAYOUT.pack(CAPABILITIES, self.control, self.addr, self.size)

    def file(self) -> FwCfgFile:
        """The fw_cfg file, served from self.buffer: after every DMA WRITE the accepted values are put back."""
        return FwCfgFile(FILE_NAME, self.buffer, writable=True, on_write=self.written)

    # --- the write rules ----------------------------------------------------------------
    def write(self, offset: int, data: bytes) -> bytes:
        """Apply a guest write of data at offset (inside the 32 bytes), as a DMA WRITE does, and return the bytes a
        read now sees."""
        self.buffer[offset:offset + len(data)] = data
        self.written(offset, data)
        return bytes(self.buffer)

    def written(self, offset: int, data: bytes) -> None:
        """fw_cfg's on_write: self.buffer now holds the guest's data at offset; take what passes the rules into
        the shadow and put the shadow back into the buffer."""
        touched = range(offset, offset + len(data))
        _, control, addr, size = LAYOUT.unpack(bytes(self.buffer))
        if not self.control & DISABLE:
            self._accept(touched, control, addr, size)
        self.buffer[:] = self.encode()

    def _accept(self, touched: range, control: int, addr: int, size: int) -> None:
        if _meets(touched, CONTROL_FIELD):
            self.control = control & CONTROL_BITS
            if self.control & DISABLE:              # sticky until reset; drops any request
                self.control, self.addr, self.size = DISABLE, 0, 0
                return
            if not self.control & FORMAT_IGVM:      # no format, no request
                self.addr = self.size = 0
        if not _meets(touched, IMAGE_FIELDS):
            return
        why = self._refusal(touched, addr, size)
        if why is None:
            self.addr, self.size = addr, size
            return
        self.addr = self.size = 0
        self._refuse(f"pyvmm: vmfwupdate: refused fw_image_addr {addr:#x} fw_image_size {size:#x}: {why}")

    def _refusal(self, touched: range, addr: int, size: int) -> str | None:
        """Why an address/size pair cannot be accepted, or None. A size of 0 with only the address written is an
        address waiting for its size (split writes); the range checks then apply to the address alone."""
        if not self.control & FORMAT_IGVM:
            return "control lacks FORMAT_IGVM (write control first, or all 32 bytes at once)"
        if size == 0 and _meets(touched, SIZE_FIELD):
            return "size is 0"
        if addr + max(size, 1) > 1 << 64:
            return "the range overflows 64 bits"
        if size > self.max_size:
            return f"size is larger than {self.max_size:#x} (min(RAM, {MAX_IMAGE >> 20} MiB))"
        end = addr + max(size, 1)
        if not any(g <= addr and end <= g + n for g, n in self.ram):
            ram = ", ".join(f"{g:#x}-{g + n:#x}" for g, n in self.ram)
            return f"the range is not inside one guest RAM range ({ram})"
        return None

    def _refuse(self, line: str) -> None:
        now = self.clock()
        if self._last_log is not None and now - self._last_log < LOG_INTERVAL:
            self._suppressed += 1
            return
        if self._suppressed:
            line += f" ({self._suppressed} similar lines suppressed)"
        self._last_log, self._suppressed = now, 0
        self.log(line)


def _meets(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop

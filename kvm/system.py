"""The /dev/kvm system object: API check, capabilities, supported CPUID, vCPU mmap size."""

import ctypes
import errno
import os

from . import uapi
from .errors import KvmError, KvmUnavailable
from .ioctl import ioctl
from .uapi import Cap, Ioctl

DEV_KVM = "/dev/kvm"
DEVICE_ENV = "PYVMM_KVM_DEVICE"   # another device node, for tests of the 'no KVM' path


class Kvm:
    """An open /dev/kvm; a context manager so the fd is never leaked."""

    def __init__(self, path: str | None = None) -> None:
        self.fd = -1
        path = path or os.environ.get(DEVICE_ENV) or DEV_KVM
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KvmUnavailable("open " + path, errno.ENOENT,
                                 "KVM is not available on this host (no kvm module loaded?)") from None
        except PermissionError:
            raise KvmUnavailable("open " + path, errno.EACCES,
                                 "add this user to the 'kvm' group or run as root") from None
        except OSError as e:
            raise KvmUnavailable("open " + path, e.errno or errno.EIO) from None
        try:
            version = ioctl(self.fd, Ioctl.GET_API_VERSION, 0, "KVM_GET_API_VERSION")
            if version != uapi.KVM_API_VERSION:
                raise KvmUnavailable("KVM_GET_API_VERSION", errno.EINVAL,
                                     f"API version {version}, this VMM needs {uapi.KVM_API_VERSION}")
            self.vcpu_mmap_size = ioctl(self.fd, Ioctl.GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE")
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise
        self._cpuid: ctypes.Structure | None = None

    def check_extension(self, cap: int) -> int:
        """The capability's value (0 when absent); some capabilities return a number, not a flag."""
        return ioctl(self.fd, Ioctl.CHECK_EXTENSION, int(cap), "KVM_CHECK_EXTENSION")

    def supported_cpuid(self) -> list[uapi.kvm_cpuid_entry2]:
        """KVM_GET_SUPPORTED_CPUID, growing the buffer on E2BIG; a fresh copy each call."""
        if self._cpuid is None:
            n = 128
            while True:
                buf = uapi.kvm_cpuid2(n)
                buf.nent = n
                try:
                    ioctl(self.fd, Ioctl.GET_SUPPORTED_CPUID, buf, "KVM_GET_SUPPORTED_CPUID")
                    break
                except KvmError as e:
                    if e.errno != errno.E2BIG or n >= 4096:
                        raise
                    n *= 2
            self._cpuid = buf
        out = []
        for i in range(self._cpuid.nent):
            e = uapi.kvm_cpuid_entry2()
            ctypes.memmove(ctypes.addressof(e), ctypes.addressof(self._cpuid.entries[i]), ctypes.sizeof(e))
            out.append(e)
        return out

    def create_vm(self) -> "Vm":
        from .vm import Vm
        return Vm(self)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Kvm":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            self.close()


def kvm_usable(path: str | None = None) -> str | None:
    """None when KVM can be used here, else the reason why not (for test skips and CLI errors)."""
    try:
        with Kvm(path):
            return None
    except KvmError as e:
        return str(e)

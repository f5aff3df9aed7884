"""ioctl through libc with ctypes; the numbers are computed from _IOC exactly as <linux/kvm.h> does.

ctypes (not the standard library's ioctl wrapper) because it passes 64-bit integer arguments unchanged, never retries on
EINTR (which the vCPU kick relies on) and releases the GIL while KVM_RUN blocks.
"""

import ctypes

from .errors import KvmError

_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2
KVMIO = 0xAE


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def io(nr: int) -> int:
    return _ioc(_IOC_NONE, nr, 0)


def ior(nr: int, size: int) -> int:
    return _ioc(_IOC_READ, nr, size)


def iow(nr: int, size: int) -> int:
    return _ioc(_IOC_WRITE, nr, size)


def iowr(nr: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, nr, size)



def _load_libc(use_errno: bool = True) -> ctypes.CDLL:
    """glibc by its soname; ctypes.util.find_library (which runs ldconfig in a subprocess) only where that fails."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=use_errno)
    except OSError:
        from ctypes.util import find_library
        return ctypes.CDLL(find_library("c") or None, use_errno=use_errno)


_libc = _load_libc()

# Two prototypes of the same symbol: one taking a pointer/integer argument, one for KVM_RUN.
_ioctl = _libc["ioctl"]
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl.restype = ctypes.c_int

_plain_libc = _load_libc(use_errno=False)
run_ioctl = _plain_libc["ioctl"]
"""Unchecked ioctl for KVM_RUN (the run loop's hot path), without ctypes' errno swap around every call: after a call
that returned -1, read errno from thread_errno(). CPython keeps errno across re-taking the GIL and its signal handler.
No argtypes: its three arguments (fd, request, 0) are plain ints that fit a C int, which ctypes passes as is, and the
call costs half as much user CPU as one that converts through argtypes (about 0.5 µs less per exit here)."""
run_ioctl.restype = ctypes.c_int
_errno_location = _plain_libc["__errno_location"]
_errno_location.restype = ctypes.POINTER(ctypes.c_int)


def thread_errno() -> "ctypes._Pointer":
    """The calling thread's errno (glibc's __errno_location); call it on the thread that makes the calls."""
    return _errno_location()


def ioctl(fd: int, request: int, arg: "int | ctypes._CData | None" = 0, name: str = "") -> int:
    """Call ioctl(fd, request, arg); arg is an integer or a ctypes object passed by address."""
    if arg is None:
        arg = 0
    elif not isinstance(arg, int):
        arg = ctypes.addressof(arg)
    ret = _ioctl(fd, request, arg)
    if ret < 0:
        raise KvmError(name or f"ioctl 0x{request:x}", ctypes.get_errno())
    return ret

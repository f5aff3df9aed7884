"""Errors of the KVM binding: every failed ioctl names itself, so a user sees which step of VM set-up failed."""

import errno as _errno
import os


class KvmError(OSError):
    """A KVM ioctl or /dev/kvm operation failed; `ioctl` names the request that failed."""

    def __init__(self, ioctl: str, err: int, detail: str = "") -> None:
        self.ioctl = ioctl
        msg = f"{ioctl} failed: {os.strerror(err)} ({_errno.errorcode.get(err, err)})"
        if detail:
            msg += f": {detail}"
        super().__init__(err, msg)

    def __str__(self) -> str:
        return self.args[1]


class KvmUnavailable(KvmError):
    """/dev/kvm is missing, not permitted or speaks the wrong API: the VMM cannot run at all."""

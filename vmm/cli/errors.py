"""The command line's error type and the one place an error becomes a printed line and an exit status.

The machine core and the loaders raise LoadError (loaders.errors) for bad files and bad launch requests and
KvmError for KVM failures; only the CLI raises UsageError. Each ends as one line on stderr.
"""

from __future__ import annotations

import sys

from loaders.errors import LoadError

from .. import status


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit status 2."""


def one_line(message: str) -> str:
    """The message with every line break and control character escaped (`\\n`, `\\x1e`): a file name or argument
    holding one must not split the error into two lines (str.splitlines also breaks at \\x1c-\\x1e, \\x85,
    U+2028, U+2029)."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def error_line(message: str) -> int:
    """Print `pyvmm: error: MESSAGE` (on one line) and return the bad-input status."""
    print(f"pyvmm: error: {one_line(message)}", file=sys.stderr)
    return status.BAD_INPUT


def exit_status_for(error: BaseException) -> int | None:
    """Print an error the CLI knows and return its exit status; None for one it does not (a VMM bug: re-raise).

    UsageError and LoadError (IgvmError included) are bad input: status 2. ValueError reaching here is a
    value a loader refused without naming a rule; it is bad input too. KvmError is fatal: status 3.
    """
    if isinstance(error, (UsageError, LoadError, ValueError)):
        return error_line(str(error))
    from kvm.errors import KvmError          # here, not at the top: `pyvmm igvm dump` needs no KVM binding
    if isinstance(error, KvmError):        # before OSError's other kinds: a failed ioctl is not bad input
        print(f"pyvmm: error: KVM: {one_line(str(error))}", file=sys.stderr)
        return status.FATAL
    if isinstance(error, KeyboardInterrupt):
        return status.INTERRUPTED
    if isinstance(error, BrokenPipeError):   # `pyvmm igvm dump F | head`: the reader left; not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return status.OK
    return None

"""Reading the files named on the command line, kept apart from the `igvm` subcommands so a launch need not
import them (argparse subparsers, json, the describers)."""

from __future__ import annotations


def read_file(path: str) -> bytes:
    """The file's bytes, or a one-line error naming it."""
    from .cli import UsageError
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def linux_igvm_from_files(kernel: str, initrd: str | None, cmdline: str) -> bytes:
    """build-linux's file from paths (shared by `igvm build-linux` and `pyvmm --kernel`); errors name the kernel."""
    from loaders.errors import LoadError
    from loaders.linux.igvm import build_linux_igvm
    data = read_file(kernel)
    initrd_data = read_file(initrd) if initrd else b""
    try:
        return build_linux_igvm(data, initrd_data, cmdline)
    except LoadError as e:
        raise LoadError(f"{kernel}: {e}") from None

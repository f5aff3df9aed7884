"""Reading the files named on the command line, kept apart from the `igvm` subcommands so a launch need not
import them (argparse subparsers, json, the describers)."""

from __future__ import annotations

import mmap
import os


MAP_AT_LEAST = 1 << 20
PIPE_LIMIT = 1 << 30          # bytes read at most from a pipe (`--igvm <(...)`), whose size is not known up front


def read_file(path: str, map_big: bool = False) -> bytes | mmap.mmap:
    """The file's bytes, or a one-line error naming it.

    With map_big, a file of MAP_AT_LEAST bytes or more is mapped (private, never written) instead of read: a
    launch then copies IGVM page data straight from the page cache into guest RAM, and GuestMemory.write drops
    the mapped pages behind it, so the file's contents never add to the VMM's resident memory.

    Only regular files and pipes: a device such as /dev/zero or /dev/urandom would be read forever (the
    reliability campaign found `pyvmm --igvm /dev/zero` hanging), so it is refused by its type; a pipe is read up
    to PIPE_LIMIT bytes.
    """
    import stat
    from loaders.errors import LoadError
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                data = fh.read(PIPE_LIMIT + 1)
                if len(data) > PIPE_LIMIT:
                    raise LoadError(f"cannot read {path}: a pipe longer than {PIPE_LIMIT >> 20} MiB")
                return data
            if not stat.S_ISREG(st.st_mode):
                kind = "a character device" if stat.S_ISCHR(st.st_mode) else \
                    "a block device" if stat.S_ISBLK(st.st_mode) else "not a file"
                raise LoadError(f"cannot read {path}: {kind}, not a regular file or a pipe")
            if map_big and st.st_size >= MAP_AT_LEAST:
                return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
            return fh.read()
    except OSError as e:
        raise LoadError(f"cannot read {path}: {e.strerror}") from None


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

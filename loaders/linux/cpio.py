"""A newc ("070701") cpio writer and reader: the initramfs format the Linux kernel unpacks.

Written in Python so a test can build an initramfs with device nodes (/dev/console) without root or
fakeroot, byte-for-byte the same on every run (fixed inode numbers, mtimes and owners). The reader
exists to check what the writer made and to validate archives a user hands in; it refuses anything
malformed with a LoadError that names the entry and its offset.
"""

from __future__ import annotations

import stat
from ..record import record

from loaders.errors import LoadError

MAGIC = b"070701"
HEADER_SIZE = 110          # 6-byte magic + 13 fields of 8 hex digits
TRAILER = "TRAILER!!!"
MAX_NAME = 4096            # PATH_MAX: the kernel's limit for a name in an initramfs


class CpioError(LoadError):
    """A malformed newc archive, or an entry the writer cannot represent."""


@record(frozen=True, slots=True)
class Entry:
    """One archive member; mode carries the file type bits (stat.S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR...)."""
    name: str
    mode: int
    data: bytes = b""          # file contents, or a symlink's target
    rdev: tuple[int, int] = (0, 0)
    uid: int = 0
    gid: int = 0
    mtime: int = 0


def regular(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _header(ino: int, e: Entry, nlink: int, namesize: int) -> bytes:
    fields = (ino, e.mode, e.uid, e.gid, nlink, e.mtime, len(e.data), 0, 0, e.rdev[0], e.rdev[1], namesize, 0)
    for v in fields:
        if not 0 <= v <= 0xFFFFFFFF:
            raise CpioError(f"cpio entry {e.name!r}: field value {v:#x} does not fit 32 bits")
    return MAGIC + b"".join(b"%08X" % v for v in fields)


def write(entries: list[Entry]) -> bytes:
    """The archive: entries in the order given (parents before children), inode numbers 1, 2, ..., trailer."""
    out = bytearray()
    seen: set[str] = set()
    for ino, e in enumerate(entries, 1):
        name = e.name.lstrip("/")
        if not name or name == TRAILER or "\0" in name or len(name.encode()) >= MAX_NAME:
            raise CpioError(f"cpio entry name {e.name!r} is empty, reserved, too long or holds a NUL")
        if name in seen:
            raise CpioError(f"cpio entry {name!r} appears twice")
        seen.add(name)
        if stat.S_IFMT(e.mode) not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK,
                                       stat.S_IFIFO, stat.S_IFSOCK):
            raise CpioError(f"cpio entry {name!r}: mode {e.mode:#o} has no file type")
        if e.data and stat.S_IFMT(e.mode) not in (stat.S_IFREG, stat.S_IFLNK):
            raise CpioError(f"cpio entry {name!r}: only files and symlinks carry data")
        raw = name.encode() + b"\0"
        out += _header(ino, e, 2 if stat.S_ISDIR(e.mode) else 1, len(raw)) + raw
        out += bytes(_pad4(HEADER_SIZE + len(raw)))
        out += e.data + bytes(_pad4(len(e.data)))
    raw = TRAILER.encode() + b"\0"
    out += MAGIC + b"".join(b"%08X" % v for v in (0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(raw), 0)) + raw
    out += bytes(_pad4(HEADER_SIZE + len(raw)))
    return bytes(out)


def read(archive: bytes) -> list[Entry]:
    """The entries of a newc archive up to its trailer; CpioError for anything truncated or malformed."""
    entries: list[Entry] = []
    pos = 0
    view = memoryview(archive)
    while True:
        if pos + HEADER_SIZE > len(archive):
            raise CpioError(f"cpio archive ends at {len(archive):#x} inside the header at {pos:#x} (no trailer)")
        if view[pos:pos + 6] != MAGIC:
            raise CpioError(f"cpio header at {pos:#x} has magic {bytes(view[pos:pos + 6])!r}, not 070701 (newc)")
        try:
            f = [int(bytes(view[pos + 6 + 8 * i:pos + 14 + 8 * i]), 16) for i in range(13)]
        except ValueError:
            raise CpioError(f"cpio header at {pos:#x} has a field that is not hexadecimal") from None
        _, mode, uid, gid, _, mtime, filesize, _, _, rmaj, rmin, namesize, _ = f
        name_at = pos + HEADER_SIZE
        if namesize < 2 or namesize > MAX_NAME or name_at + namesize > len(archive):
            raise CpioError(f"cpio header at {pos:#x}: name size {namesize} is out of range or past the end")
        raw = bytes(view[name_at:name_at + namesize])
        if raw[-1] != 0 or 0 in raw[:-1]:
            raise CpioError(f"cpio header at {pos:#x}: the name is not one NUL-terminated string")
        name = raw[:-1].decode("utf-8", "surrogateescape")
        data_at = name_at + namesize + _pad4(HEADER_SIZE + namesize)
        if data_at + filesize > len(archive):
            raise CpioError(f"cpio entry {name!r} at {pos:#x}: {filesize} data bytes run past the archive's end")
        if name == TRAILER:
            return entries
        entries.append(Entry(name, mode, bytes(view[data_at:data_at + filesize]), (rmaj, rmin), uid, gid, mtime))
        pos = data_at + filesize + _pad4(filesize)

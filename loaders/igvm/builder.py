"""A small builder for IGVM files: declare platforms, append directives, write. Used by pyvmm's
IGVM generators (build-linux, build-uefi) and by tests that package test guests."""

from __future__ import annotations

from . import model as m
from .constants import Architecture, HeaderType, Platform, PAGE_SIZE
from .writer import write_igvm


class IgvmBuilder:
    def __init__(self, version: int = 2, architecture: Architecture = Architecture.X64) -> None:
        self.version = version
        self.architecture = architecture
        self.platforms: list[m.SupportedPlatform] = []
        self.initializations: list = []
        self.directives: list = []
        self._next_area = 0

    def platform(self, platform_type: Platform, highest_vtl: int = 0) -> int:
        """Declare a platform; returns its compatibility mask bit."""
        mask = 1 << len(self.platforms)
        self.platforms.append(m.SupportedPlatform(mask, highest_vtl, platform_type))
        return mask

    def add(self, header) -> None:
        if m.is_a(header, *m.INITIALIZATIONS):
            self.initializations.append(header)
        else:
            self.directives.append(header)

    def pages(self, gpa: int, data, mask: int, flags: int = 0, data_type: int = 0) -> None:
        """PAGE_DATA headers for data at gpa, one per 4 KiB page; all-zero pages are stored without data."""
        if gpa % PAGE_SIZE:
            raise ValueError(f"GPA {gpa:#x} is not page-aligned")
        mv = memoryview(bytes(data))
        for off in range(0, max(len(mv), 1), PAGE_SIZE):
            chunk = bytes(mv[off:off + PAGE_SIZE]).ljust(PAGE_SIZE, b"\0")
            self.directives.append(m.PageData(gpa + off, mask, flags, data_type, chunk if any(chunk) else None))

    def parameter(self, usage: HeaderType, gpa: int, mask: int, size: int = PAGE_SIZE, byte_offset: int = 0) -> int:
        """A parameter area holding one host parameter, inserted at gpa; returns the area index."""
        idx = self._next_area
        self._next_area += 1
        self.directives.append(m.ParameterArea(size, idx))
        self.directives.append(m.ParameterUsage(usage, idx, byte_offset))
        self.directives.append(m.ParameterInsert(gpa, mask, idx))
        return idx

    def file(self) -> m.IgvmFile:
        return m.IgvmFile(self.version, tuple(self.platforms), tuple(self.initializations), tuple(self.directives),
                          self.architecture)

    def build(self) -> bytes:
        return write_igvm(self.file())

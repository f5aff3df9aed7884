"""loaders/elf_symbols.py, the names --trace rip prints, against GNU nm on ELF files the test toolchain links."""

from __future__ import annotations

import struct
import subprocess

import pytest

from loaders.elf_symbols import elf_symbols
from loaders.errors import LoadError
from tests.guests.build import build
from tests.linux_images import VMLINUX_LOAD

pytestmark = pytest.mark.usefixtures("toolchain_ok")


@pytest.fixture(scope="module")
def guest_elf(tmp_path_factory):
    """A vmlinux-like ELF with a .bss (SHT_NOBITS: a size but no bytes in the file), as every kernel has."""
    path = tmp_path_factory.mktemp("elf") / "pm.elf"
    path.write_bytes(build("linux_start.S", extra_sources=("pm_timer.c",), load_addr=VMLINUX_LOAD, elf=True))
    return path


def test_function_symbols_match_gnu_nm(guest_elf):
    nm = subprocess.run(["nm", "-S", str(guest_elf)], capture_output=True, text=True, check=True).stdout
    funcs = {f[3]: (int(f[0], 16), int(f[1], 16)) for f in map(str.split, nm.splitlines()) if len(f) == 4
             and f[2] in "tT"}
    symbols = elf_symbols(guest_elf.read_bytes())
    assert {"main", "pm_wait"} <= set(funcs)
    for name, (start, size) in funcs.items():
        assert symbols.lookup(start) == f"{name}+0x0"
        assert symbols.lookup(start + size - 1) == f"{name}+{size - 1:#x}"


def test_a_stripped_file_or_not_an_elf_has_no_symbols(guest_elf, tmp_path):
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-o", str(stripped), str(guest_elf)], check=True)
    assert len(elf_symbols(stripped.read_bytes())) == 0
    assert len(elf_symbols(b"MZ" + bytes(100))) == 0


def test_a_symbol_table_past_the_end_is_a_load_error(guest_elf):
    data = bytearray(guest_elf.read_bytes())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    for i in range(shnum):
        hdr = shoff + i * shentsize
        if struct.unpack_from("<I", data, hdr + 4)[0] == 2:          # SHT_SYMTAB: make it run past the file
            struct.pack_into("<Q", data, hdr + 32, len(data))
            with pytest.raises(LoadError, match=rf"ELF section {i} at .* runs past the file's end"):
                elf_symbols(bytes(data))
            return
    pytest.fail("the linked guest has no symbol table")

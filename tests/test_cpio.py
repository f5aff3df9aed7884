"""The newc cpio writer that builds initramfs images: what GNU cpio and the kernel read, byte-stable, strict reader."""

from __future__ import annotations

import shutil
import stat
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.linux import cpio

SAMPLE = [cpio.directory("bin"), cpio.directory("dev"), cpio.char_device("dev/console", 5, 1),
          cpio.regular("bin/busybox", b"\x7fELF" + bytes(range(256)) * 3, 0o755), cpio.symlink("bin/sh", "busybox"),
          cpio.regular("init", b"#!/bin/sh\necho hi\n", 0o755), cpio.regular("empty", b"")]


def test_round_trip_keeps_names_modes_data_and_device_numbers():
    back = cpio.read(cpio.write(SAMPLE))
    assert [(e.name, e.mode, e.data, e.rdev) for e in back] == [(e.name, e.mode, e.data, e.rdev) for e in SAMPLE]


def test_layout_is_newc_with_4_byte_alignment_and_a_trailer():
    data = cpio.write(SAMPLE)
    assert data.startswith(b"070701") and len(data) % 4 == 0
    assert b"TRAILER!!!\0" in data[-128:]
    assert cpio.write(SAMPLE) == data          # deterministic: fixed inodes, mtimes, owners


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed (apt-get install cpio)")
def test_gnu_cpio_lists_what_was_written():
    p = subprocess.run(["cpio", "-itv", "--quiet"], input=cpio.write(SAMPLE), capture_output=True, check=True)
    lines = p.stdout.decode().splitlines()
    assert [ln.split()[-1] if "->" not in ln else ln.split()[-3] for ln in lines] == [e.name for e in SAMPLE]
    assert lines[2].startswith("crw-------") and lines[2].split()[4:6] == ["5,", "1"]
    assert lines[4].endswith("bin/sh -> busybox")


@pytest.mark.parametrize("entries, words", [
    ([cpio.regular("a", b""), cpio.regular("a", b"")], "appears twice"),
    ([cpio.regular("", b"")], "empty"),
    ([cpio.regular("TRAILER!!!", b"")], "reserved"),
    ([cpio.Entry("x", 0o644)], "no file type"),
    ([cpio.Entry("d", stat.S_IFDIR | 0o755, b"data")], "only files and symlinks"),
    ([cpio.Entry("f", stat.S_IFREG | 0o644, mtime=1 << 32)], "does not fit 32 bits"),
])
def test_writer_refuses_what_the_format_cannot_say(entries, words):
    with pytest.raises(cpio.CpioError, match=words):
        cpio.write(entries)


@pytest.mark.parametrize("cut, words", [(5, "inside the header"), (115, "run past the archive's end"),
                                        (-40, "no trailer")])
def test_reader_refuses_truncated_archives(cut, words):
    data = cpio.write([cpio.regular("file", b"x" * 64)])
    with pytest.raises(cpio.CpioError, match=words):
        cpio.read(data[:cut])


def test_reader_refuses_foreign_magic():
    with pytest.raises(cpio.CpioError, match="not 070701"):
        cpio.read(b"070707" + bytes(200))


names = st.text(st.characters(codec="ascii", exclude_characters="\0/"), min_size=1, max_size=40)


@given(st.dictionaries(names, st.binary(max_size=300), max_size=12))
def test_hypothesis_round_trip(files):
    files = {k: v for k, v in files.items() if k != "TRAILER!!!"}
    entries = [cpio.regular(k, v) for k, v in files.items()]
    assert {e.name: e.data for e in cpio.read(cpio.write(entries))} == files


@settings(max_examples=300)
@given(st.integers(0, 4000), st.integers(0, 255), st.integers(1, 64))
def test_hypothesis_mutated_archives_parse_or_fail_cleanly(pos, value, cut):
    data = bytearray(cpio.write(SAMPLE))
    data[pos % len(data)] = value
    try:
        cpio.read(bytes(data[:len(data) - cut + 1]) if cut > 1 else bytes(data))
    except cpio.CpioError:
        pass

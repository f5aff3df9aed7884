"""-m/-p parsing: QEMU's forms (256M, 2G, 2GB, a plain number in MiB), and one-line errors for the rest."""

import pytest

from vmm.sizes import parse_processors, parse_size


@pytest.mark.parametrize("text,value", [("256M", 256 << 20), ("2G", 2 << 30), ("2GB", 2 << 30), ("2GiB", 2 << 30),
                                        ("1g", 1 << 30), ("512", 512 << 20), ("4096K", 4 << 20), ("1.5G", 3 << 29)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text,words", [("abc", "not a number"), ("0", "positive"), ("1M", "2 MiB minimum"),
                                        ("4097K", "multiple of 4 KiB"), ("2P", "not a number"), ("-1G", "positive"),
                                        ("2T", "1 TiB maximum")])
def test_bad_sizes(text, words):
    with pytest.raises(ValueError, match=words):
        parse_size(text)


def test_processors():
    assert parse_processors("4") == 4
    for bad in ("0", "256", "x", "1.5"):
        with pytest.raises(ValueError):
            parse_processors(bad)

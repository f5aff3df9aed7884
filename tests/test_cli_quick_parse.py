"""The launch command line read without argparse (vmm.cli.quick_parse) means what argparse makes of it.

quick_parse takes the plain command lines a launch uses and hands everything else to argparse; for any
command line it accepts, the options must be exactly argparse's, and where argparse refuses one, quick_parse
must have declined it (so the user sees argparse's message)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmm.cli import OPTIONS, _parser, quick_parse
from vmm.cli.errors import UsageError

WORDS = [f for o in OPTIONS for f in o[0]] + [
    "--igvm=a.igvm", "--mem", "--memory=64M", "-m64M", "-m=64M", "--no-reboot=1", "--help", "--version", "--",
    "--trace=exits", "--timeout=2.5", "--fw-cfg=name=opt/x,string=y", "stray",
    "a.igvm", "64M", "2", "host,-xsave", "exits", "rip", "native", "vsm_isolation", "1.5", "-3", "nan?", "",
    "-x", "file", "stdio", "type=uefi,path=f",
]


def argparse_view(argv: list[str]) -> dict | None:
    try:
        return vars(_parser().parse_args(argv))
    except (UsageError, SystemExit):
        return None


def same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
               for x, y in ((a[k], b[k]) for k in a))


@pytest.mark.parametrize("argv", [
    [], ["--igvm", "a.igvm", "-m", "64M"], ["--kernel", "k", "--initrd", "i", "--cmdline", "console=ttyS0"],
    ["--igvm=type=uefi,path=f", "--trace", "exits", "--trace=rip", "--timeout", "3", "--no-reboot"],
    ["--fw-cfg", "name=opt/a,string=b", "--fw-cfg", "name=opt/c,file=d", "-p", "4", "--serial", "none"],
])
def test_plain_command_lines_are_read_without_argparse_and_as_argparse_reads_them(argv):
    quick = quick_parse(argv)
    assert quick is not None
    assert vars(quick) == argparse_view(argv)


@pytest.mark.parametrize("argv", [
    ["--help"], ["--mem", "64M"], ["-m64M"], ["--igvm"], ["--trace", "everything"], ["--timeout", "soon"],
    ["--igvm", "-x"], ["stray"], ["--no-reboot=1"], ["--igvm-platform", "sev"],
])
def test_anything_else_goes_to_argparse(argv):
    assert quick_parse(argv) is None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=6))
def test_quick_parse_agrees_with_argparse_or_declines(argv):
    quick = quick_parse(argv)
    if quick is not None:
        expected = argparse_view(argv)
        assert expected is not None, f"argparse refuses {argv} but quick_parse accepted it"
        assert same(vars(quick), expected)

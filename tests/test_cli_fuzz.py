"""Hypothesis over the whole command line: any argv built from pyvmm's own options, values good and bad, and paths
to good files, garbage, devices, directories and nothing, ends with status 0 (help, version, a dump or a plan of a
good file) or 2 with exactly one `pyvmm: error:` line, never a traceback. PYVMM_KVM_DEVICE points at a missing node,
so an argv that is entirely good stops at 'cannot use KVM' (status 2) instead of launching a VM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from vmm.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "igvm"
GOOD = [str(p) for p in sorted(DATA.glob("*.igvm"))] + [str(ROOT / "examples" / "hello-uefi.igvm")]
BAD_PATHS = ["/dev/zero", "/dev/null", "/dev/full", "/dev/urandom", "/tmp", "/nonexistent", "", "-", "/proc/self/mem",
             str(ROOT / "README.md"), str(ROOT / "tests" / "data" / "igvm" / "multi-platform.json")]
OPTIONS = ["--igvm", "--igvm-platform", "--igvm-relocation", "--kernel", "--initrd", "-m", "--memory", "-p",
           "--processors", "--cpu", "--cmdline", "--serial", "--fw-cfg", "--no-reboot", "--timeout", "--trace",
           "--symbols", "--help", "--version", "--", "-", "--bogus", "-x"]
IGVM_SUB = [["igvm"], ["igvm", "dump"], ["igvm", "dump", "--json"], ["igvm", "plan"], ["igvm", "build-linux"],
            ["igvm", "build-uefi"], ["igvm", "bogus"], []]
VALUES = ["1G", "64M", "0", "-1", "5T", "1.5G", "abc", "255", "256", "1e9", "nan", "inf", "-0", "0x10",
          "host", "host,-xsave", "host,+bogus", "stdio", "none", "file:", "file:/dev/full", "native",
          "vsm_isolation", "sev_snp", "file", "auto", "absolute=0x1000", "exits", "rip", "type=uefi,path=",
          "type=linux", "type=bogus,path=/dev/null", "path=", "name=opt/x,string=1", "name=opt/x,file=/dev/zero",
          "name=etc/x,string=1", "name=,string=", "-o", "--output", "--firmware", "--native", "--no-r12", "é",
          "\u202e", " ", "=", ",", "a" * 300]


def tokens() -> st.SearchStrategy[str]:
    path = st.sampled_from(GOOD + BAD_PATHS)
    spec = st.builds(lambda t, p: f"type={t},path={p}", st.sampled_from(["uefi", "linux", "x", ""]), path)
    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
    return st.one_of(st.sampled_from(OPTIONS), st.sampled_from(VALUES), path, spec, text)


@pytest.fixture(autouse=True)
def no_kvm(monkeypatch, tmp_path):
    monkeypatch.setenv("PYVMM_KVM_DEVICE", str(tmp_path / "no-kvm"))
    monkeypatch.chdir(tmp_path)                       # build-* -o writes land here


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:                           # argparse --help/--version
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(IGVM_SUB), st.lists(tokens(), max_size=8))
def test_every_argv_ends_in_status_0_or_2_with_one_line(capsys, prefix, rest):
    argv = prefix + rest
    code, out, err = _run(argv, capsys)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("pyvmm: error: "), (argv, err)


@pytest.mark.parametrize("argv", [["--igvm", "/dev/zero"], ["igvm", "dump", "/dev/zero"], ["--kernel", "/dev/zero"],
                                  ["igvm", "plan", "/dev/urandom"],
                                  ["--fw-cfg", "name=opt/x,file=/dev/zero", "--igvm", GOOD[0]],
                                  ["igvm", "build-uefi", "--firmware", "/dev/zero", "-o", "out.igvm"]])
def test_a_device_that_never_ends_is_refused_not_read_forever(capsys, argv):
    """Found by this campaign: these read /dev/zero until memory ran out."""
    code, out, err = _run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "a character device, not a regular file or a pipe" in err, err


def test_a_pipe_is_still_read(capsys):
    r, w = os.pipe()
    data = Path(GOOD[0]).read_bytes()
    pid = os.fork()
    if pid == 0:                                      # the writer: a process substitution's other end
        os.close(r)
        os.write(w, data)
        os._exit(0)
    os.close(w)
    try:
        code, out, err = _run(["igvm", "dump", f"/dev/fd/{r}"], capsys)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert code == 0 and f"{len(data):,} bytes" in out, err

"""The pyvmm command's contract: --help/--version, one-line errors with status 2, `python -m vmm`."""

import subprocess
import sys

import pytest

from vmm.cli import main


def _run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmm", *args], capture_output=True, text=True, timeout=60, env=env)


def test_help_and_version():
    p = _run("--help")
    assert p.returncode == 0 and "--igvm" in p.stdout and "Exit status" in p.stdout
    p = _run("--version")
    assert p.returncode == 0 and p.stdout.startswith("pyvmm ")


@pytest.mark.parametrize("args,words", [
    (["--igvm", "x", "-m", "lots"], "memory size 'lots'"),
    (["--igvm", "x", "-p", "0"], "processor count 0"),
    (["--igvm", "x", "--timeout", "-1"], "--timeout"),
    (["--bogus"], "unrecognized arguments"),
    ([], "nothing to boot"),
    (["--igvm", "a", "--kernel", "b"], "exclusive"),
    (["--igvm", "x", "--serial", "tcp:1"], "--serial"),
])
def test_bad_input_is_one_line_and_status_2(capsys, args, words):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyvmm: error: ") and words in err
    assert "Traceback" not in err


def test_python_dash_m_is_the_same_program():
    p = _run("-m", "0")
    assert p.returncode == 2 and p.stderr.startswith("pyvmm: error: ") and p.stderr.count("\n") == 1

"""The pyvmm command's contract: --help/--version, one-line errors with status 2, `python -m vmm`."""

import subprocess
import sys
from pathlib import Path

import pytest

from vmm.cli import main

HELLO = str(Path(__file__).resolve().parent.parent / "examples" / "hello-uefi.igvm")   # a valid IGVM


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
    (["--igvm", "/nonexistent.igvm"], "cannot read /nonexistent.igvm"),
    (["--kernel", "/nonexistent"], "cannot read /nonexistent"),
    (["--igvm", HELLO, "--fw-cfg", "name=x,string=1"], "user fw_cfg names go under opt/"),
    (["--igvm", HELLO, "--trace", "rip", "--symbols", "/nonexistent"], "--symbols /nonexistent"),
    (["--igvm", HELLO, "--serial", "file:/nonexistent-dir/x"], "cannot open"),
    (["--igvm", HELLO, "--igvm-relocation", "auto"], "relocation is not supported"),
])
def test_bad_input_is_one_line_and_status_2(capsys, monkeypatch, tmp_path, args, words):
    monkeypatch.setenv("PYVMM_KVM_DEVICE", str(tmp_path / "no-kvm"))     # options are checked before KVM
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyvmm: error: ") and words in err
    assert "Traceback" not in err


def test_python_dash_m_is_the_same_program():
    p = _run("-m", "0")
    assert p.returncode == 2 and p.stderr.startswith("pyvmm: error: ") and p.stderr.count("\n") == 1


def test_missing_kvm_is_one_line_and_status_2(tmp_path):
    import os
    env = dict(os.environ, PYVMM_KVM_DEVICE=str(tmp_path / "no-kvm"))
    p = _run("--igvm", HELLO, env=env)
    assert p.returncode == 2
    assert p.stderr.startswith("pyvmm: error: cannot use KVM: ") and "not available" in p.stderr
    assert p.stderr.count("\n") == 1
    (tmp_path / "kvm").write_bytes(b"")         # exists, but is no KVM device
    p = _run("--igvm", HELLO, env=dict(env, PYVMM_KVM_DEVICE=str(tmp_path / "kvm")))
    assert p.returncode == 2 and "cannot use KVM" in p.stderr and p.stderr.count("\n") == 1


def test_the_stdlib_ioctl_module_is_named_nowhere():
    from pathlib import Path
    word = "fc" + "ntl"
    root = Path(__file__).resolve().parent.parent
    hits = [str(p) for p in root.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.parts) and p.suffix in
            (".py", ".md", ".toml", ".S", ".c", ".h", ".cfg", ".txt", "") and word in p.read_text(errors="ignore")]
    assert not hits


def test_the_library_raises_load_error_not_a_cli_error(tmp_path):
    from loaders.errors import LoadError
    from vmm.api import run_igvm
    with pytest.raises(LoadError, match="cannot read .*nonexistent"):
        run_igvm(tmp_path / "nonexistent")


def test_errors_map_to_statuses_in_one_place(capsys):
    from kvm.errors import KvmError
    from loaders.errors import IgvmError
    from vmm import status
    from vmm.cli.errors import UsageError, exit_status_for
    assert exit_status_for(UsageError("u")) == exit_status_for(IgvmError("i")) == status.BAD_INPUT == 2
    assert exit_status_for(KvmError("KVM_RUN", 5)) == status.FATAL == 3
    assert exit_status_for(KeyboardInterrupt()) == status.INTERRUPTED == 130
    assert exit_status_for(RuntimeError("a VMM bug")) is None          # re-raised, never hidden as bad input
    assert capsys.readouterr().err.splitlines() == ["pyvmm: error: u", "pyvmm: error: i",
                                                     "pyvmm: error: KVM: KVM_RUN failed: Input/output error (EIO)"]

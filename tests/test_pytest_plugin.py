"""pyvmm's pytest plugin (vmm/pytest_plugin.py), tested as a user meets it: test files run by pytester.

Each test writes a small test module into a temporary folder, runs pytest on it with the plugin, and checks the
outcome counts, the report text and the snapshot files on disk.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from vmm.testing import HeaderType, ParamSpec, tiny_guest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
# An installed pyvmm loads the plugin through its entry point; a plain checkout names it.
AUTOLOADED = not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") and any(
    ep.name == "pyvmm" for ep in entry_points(group="pytest11"))
PLUGIN = () if AUTOLOADED else ("-p", "vmm.pytest_plugin")

SNAPSHOT_TEST = """
from vmm.testing import tiny_guest, ParamSpec, HeaderType
VPS = (ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x20000),)

def test_plan(igvm_snapshot):
    igvm_snapshot("tiny", tiny_guest({message!r}, params=VPS), cpus={cpus})
"""


@pytest.fixture
def tester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("PYVMM_REQUIRE_KVM", raising=False)
    return pytester


def run(tester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return tester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", *args)


def snapshot_module(tester: pytest.Pytester, message: str = "hi\n", cpus: int = 1) -> None:
    tester.makepyfile(test_snap=SNAPSHOT_TEST.format(message=message, cpus=cpus))


def test_the_entry_point_names_the_plugin_module():
    """`pip install pyvmm` makes the fixtures available: pytest11 entry point `pyvmm` -> vmm.pytest_plugin."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pytest11"] == {"pyvmm": "vmm.pytest_plugin"}
    assert "pytest" not in " ".join(meta["project"]["dependencies"])
    assert any(d.startswith("pytest-xdist") for d in meta["project"]["optional-dependencies"]["test"])


def test_nothing_else_in_pyvmm_imports_pytest_or_the_plugin():
    """pytest stays optional: a launch never imports it."""
    for pkg in ("kvm", "loaders", "chipset", "vmm"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path == ROOT / "vmm" / "pytest_plugin.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                for n in names:
                    assert n.split(".")[0] not in ("pytest", "_pytest") and "pytest_plugin" not in n, (path, n)


def test_missing_snapshot_fails_and_writes_nothing(tester):
    snapshot_module(tester)
    r = run(tester)
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*igvm snapshot __igvm_snapshots__/tiny.plan does not exist; run pytest with "
                            "--igvm-snapshot-update to write it*"])
    assert not (tester.path / "__igvm_snapshots__" / "tiny.plan").exists()


def test_update_writes_the_plan_text_of_pyvmm_igvm_plan_and_then_it_matches(tester):
    snapshot_module(tester, cpus=2)
    run(tester, "--igvm-snapshot-update").assert_outcomes(passed=1)
    snap = (tester.path / "__igvm_snapshots__" / "tiny.plan").read_text()
    # The same text the command prints for the same file and options (its header names the file instead).
    igvm = tester.path / "tiny.igvm"
    igvm.write_bytes(tiny_guest("hi\n", params=(ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x20000),)))
    cli = subprocess.run([sys.executable, "-m", "vmm", "igvm", "plan", str(igvm), "-p", "2"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert snap.splitlines()[0] == "# pyvmm load plan for tiny"
    assert snap.splitlines()[1:] == cli.splitlines()[1:]
    assert "parameter 0 VP_COUNT_PARAMETER@0x0: 2 VPs" in snap
    run(tester).assert_outcomes(passed=1)
    assert [p.name for p in (tester.path / "__igvm_snapshots__").iterdir()] == ["tiny.plan"]   # no temp files


def test_a_mismatch_fails_with_a_unified_and_a_decoded_diff(tester):
    snapshot_module(tester, message="hi\n", cpus=1)
    run(tester, "--igvm-snapshot-update").assert_outcomes(passed=1)
    before = (tester.path / "__igvm_snapshots__" / "tiny.plan").read_text()
    snapshot_module(tester, message="hello\n", cpus=3)
    r = run(tester)
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines([
        "*igvm snapshot __igvm_snapshots__/tiny.plan differs from the load plan*",
        "--- __igvm_snapshots__/tiny.plan (snapshot)",
        "+++ tiny (now)",
        "-machine: 1 vCPU(s), RAM 0x0-0x40000000",
        "+machine: 3 vCPU(s), RAM 0x0-0x40000000",
    ])
    out = r.stdout.str()
    assert "\n-parameter 0 VP_COUNT_PARAMETER@0x0: 1 VPs\n+parameter 0 VP_COUNT_PARAMETER@0x0: 3 VPs\n" in out
    assert "parameter 0 VP_COUNT_PARAMETER@0x0: 1 VPs -> 3 VPs" in out
    assert "write at 0x100000 (page data (header #8)): contents changed (sha256:" in out
    assert (tester.path / "__igvm_snapshots__" / "tiny.plan").read_text() == before   # a failure never writes


def test_update_rewrites_a_snapshot_that_differs(tester):
    snapshot_module(tester, cpus=1)
    run(tester, "--igvm-snapshot-update").assert_outcomes(passed=1)
    snapshot_module(tester, cpus=4)
    run(tester, "--igvm-snapshot-update").assert_outcomes(passed=1)
    assert "parameter 0 VP_COUNT_PARAMETER@0x0: 4 VPs" in (tester.path / "__igvm_snapshots__" / "tiny.plan").read_text()
    run(tester).assert_outcomes(passed=1)


def test_a_bad_snapshot_name_is_an_error_not_a_path(tester):
    tester.makepyfile("""
        from vmm.testing import tiny_guest
        def test_plan(igvm_snapshot):
            igvm_snapshot("../escape", tiny_guest())
    """)
    r = run(tester, "--igvm-snapshot-update")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*snapshot name '../escape': use letters, digits and . _ + - only*"])
    assert not (tester.path.parent / "escape.plan").exists()


XDIST_TEST = """
import os, pytest
from vmm.testing import tiny_guest

@pytest.mark.parametrize("i", range(12))
def test_plan(igvm_snapshot, i):
    igvm_snapshot(f"guest{i % 6}", tiny_guest(f"guest {i % 6}\\n"), cpus=1 + i % 6)
"""


def test_snapshot_updates_from_several_xdist_workers_do_not_clobber_each_other(tester):
    pytest.importorskip("xdist")
    tester.makepyfile(test_x=XDIST_TEST)
    r = run(tester, "-n", "2", "--igvm-snapshot-update")
    r.assert_outcomes(passed=12)
    folder = tester.path / "__igvm_snapshots__"
    assert sorted(p.name for p in folder.iterdir()) == [f"guest{i}.plan" for i in range(6)]
    for i in range(6):
        assert f"machine: {1 + i} vCPU(s)" in (folder / f"guest{i}.plan").read_text()
    run(tester, "-n", "2").assert_outcomes(passed=12)


XDIST_RUN_TEST = """
import os, pytest
from vmm.testing import tiny_guest

@pytest.mark.parametrize("i", range(6))
def test_run(pyvmm_run, i):
    out = pyvmm_run(tiny_guest(f"run {i}\\n", i), memory="64M", timeout=30)
    assert (out.status, out.text) == ((i << 1) | 1, f"run {i}\\n")
    with open(os.path.join(FOLDER, f"{i}.worker"), "w") as fh:
        fh.write(os.environ["PYTEST_XDIST_WORKER"] + " " + str(os.getpid()))
"""


def test_each_xdist_worker_runs_its_own_guests(tester, tmp_path):
    pytest.importorskip("xdist")
    from vmm.pytest_plugin import require_kvm
    require_kvm()
    done = tmp_path / "done"
    done.mkdir()
    tester.makepyfile(test_x=XDIST_RUN_TEST.replace("FOLDER", repr(str(done))))
    r = run(tester, "-n", "2", "--dist", "load")
    r.assert_outcomes(passed=6)
    workers = {p.read_text() for p in done.iterdir()}
    assert len(list(done.iterdir())) == 6
    assert {w.split()[0] for w in workers} == {"gw0", "gw1"}           # both workers ran guests,
    assert len({w.split()[1] for w in workers}) == 2                     # each in its own process


KVM_TEST = """
import pytest

@pytest.mark.kvm
def test_marked():
    pass

def test_fixture(pyvmm_run):
    pass

def test_plain():
    pass
"""


@pytest.fixture
def no_kvm(monkeypatch):
    """/dev/kvm as the plugin sees it in the inner pytest: a device path that does not exist."""
    monkeypatch.setenv("PYVMM_KVM_DEVICE", "/nonexistent/no-such-kvm")


def test_kvm_marker_and_fixture_skip_without_kvm(tester, no_kvm):
    tester.makepyfile(KVM_TEST)
    r = run(tester, "-rs")
    r.assert_outcomes(passed=1, skipped=2)
    r.stdout.fnmatch_lines(["SKIPPED*/dev/kvm unusable: *no-such-kvm*"])


def test_kvm_marker_and_fixture_fail_under_require_kvm(tester, no_kvm, monkeypatch):
    tester.makepyfile(KVM_TEST)
    monkeypatch.setenv("PYVMM_REQUIRE_KVM", "1")
    r = run(tester)
    r.assert_outcomes(passed=1, errors=2)
    assert r.stdout.str().count("PYVMM_REQUIRE_KVM=1 but /dev/kvm is unusable") >= 2


REPORT_TEST = """
from vmm.testing import tiny_guest, crashing_guest

def test_wrong_text(pyvmm_run):
    out = pyvmm_run(tiny_guest("the guest said this\\n", 5), memory="64M")
    assert out.text == "something else"

def test_crash(pyvmm_run):
    out = pyvmm_run(crashing_guest(), memory="64M")
    assert out.status == 0

def test_passes(pyvmm_run):
    import inspect
    from vmm.api import run_igvm
    assert inspect.signature(pyvmm_run) == inspect.signature(run_igvm)
    assert pyvmm_run(tiny_guest("quiet pass\\n"), memory="64M").status == 0x21
"""


def test_a_failing_test_reports_the_serial_output_and_the_register_dump(tester):
    from vmm.pytest_plugin import require_kvm
    require_kvm()
    tester.makepyfile(REPORT_TEST)
    r = run(tester)
    r.assert_outcomes(failed=2, passed=1)
    out = r.stdout.str()
    r.stdout.fnmatch_lines(["*- pyvmm run 1 of 1: status 11 (EXIT): guest serial output -*",
                            "the guest said this"])
    r.stdout.fnmatch_lines(["*- pyvmm run 1 of 1: status 3 (FATAL): register dump -*",
                            "vCPU 0: KVM internal error: *", "vCPU 0 registers:"])
    assert "RIP=00000000c0000000" in out                  # where the crashing guest jumped
    assert "quiet pass" not in out                        # a passing test adds nothing


TINY_SOURCE = r"""
    .code64
    .globl _start
_start:
    lea msg(%rip), %rsi
1:  lodsb
    test %al, %al
    jz 3f
    mov %al, %bl
    mov $0x3fd, %dx
2:  in %dx, %al
    test $0x20, %al
    jz 2b
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    jmp 1b
3:  mov $0x2a, %al
    out %al, $0xf4
4:  hlt
    jmp 4b
msg: .asciz "from GNU as\n"
"""


def test_tiny_guest_is_the_code_gnu_as_makes_of_its_documented_source(toolchain_ok):
    """vmm/testing.py ships tiny_guest as machine code; GNU as, given the source its comment shows, agrees."""
    from vmm.testing import assemble, flat_guest
    assert tiny_guest("from GNU as\n", 0x2a) == flat_guest(assemble(TINY_SOURCE))


@pytest.mark.kvm
def test_tiny_guest_prints_and_exits():
    from vmm.api import run_igvm
    out = run_igvm(tiny_guest("pyvmm\n", 0x33), memory="64M", timeout=30)
    assert (out.status, out.text) == ((0x33 << 1) | 1, "pyvmm\n")


def test_the_report_sections_come_back_from_xdist_workers(tester):
    pytest.importorskip("xdist")
    from vmm.pytest_plugin import require_kvm
    require_kvm()
    tester.makepyfile(REPORT_TEST)
    r = run(tester, "-n", "2")
    r.assert_outcomes(failed=2, passed=1)
    r.stdout.fnmatch_lines(["*- pyvmm run 1 of 1: status 11 (EXIT): guest serial output -*",
                            "the guest said this"])
    assert "RIP=00000000c0000000" in r.stdout.str()

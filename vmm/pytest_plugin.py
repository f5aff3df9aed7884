"""pyvmm's pytest plugin (entry point `pytest11`: `pyvmm`): loader regression tests without the plumbing.

Installed with pyvmm; pytest itself stays optional (only this module imports it, and nothing in pyvmm imports
this module). What it gives a test:

- `pyvmm_run(igvm, memory=..., cpus=..., ...)`: `vmm.api.run_igvm`, and when the test fails its report has a
  section per run with the guest's serial output, and the register dump for a fatal run (status 3).
- `igvm_snapshot(name, igvm, **plan_options)`: the file's load plan (the text of `pyvmm igvm plan` with those
  options: memory, cpus, cmdline, igvm_type, platform) must equal `__igvm_snapshots__/NAME.plan` beside the
  test module. A missing snapshot fails unless pytest runs with `--igvm-snapshot-update`, which writes (or
  rewrites) it; a mismatch fails with a unified diff and a decoded list of what changed (vmm/plan_diff.py).
- `@pytest.mark.kvm`: the test needs a usable /dev/kvm; it is skipped without one, and fails instead under
  PYVMM_REQUIRE_KVM=1 (CI). `pyvmm_run` implies it.
- Guests to run: vmm/testing.py (`tiny_guest`, `crashing_guest`, `flat_guest`, `assemble`).

Under pytest-xdist (`-n auto`) each worker process makes its own VMs (a run is in-process), and snapshot
updates are one file per snapshot written to a temporary file and renamed into place, so workers never leave
a half-written or interleaved snapshot.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from pathlib import Path

import pytest

SNAPSHOT_DIR = "__igvm_snapshots__"
_RUNS = pytest.StashKey[list]()
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyvmm", "pyvmm IGVM loader tests")
    group.addoption("--igvm-snapshot-update", action="store_true", default=False,
                    help="write missing igvm_snapshot files and rewrite ones that differ")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kvm: the test needs a usable /dev/kvm (skipped without it; fails under "
                                       "PYVMM_REQUIRE_KVM=1)")


def require_kvm() -> None:
    """Skip the calling test when /dev/kvm is unusable, or fail it when PYVMM_REQUIRE_KVM=1 asks for KVM."""
    from kvm import kvm_usable
    reason = kvm_usable()
    if reason is None:
        return
    if os.environ.get("PYVMM_REQUIRE_KVM") == "1":
        pytest.fail(f"PYVMM_REQUIRE_KVM=1 but /dev/kvm is unusable: {reason}", pytrace=False)
    pytest.skip(f"/dev/kvm unusable: {reason}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kvm") is not None:
        require_kvm()


@pytest.fixture
def pyvmm_run(request: pytest.FixtureRequest):
    """vmm.api.run_igvm, recorded so a failing test's report shows each run's serial output (and dump)."""
    require_kvm()
    from vmm.api import run_igvm
    runs = request.node.stash.setdefault(_RUNS, [])

    @functools.wraps(run_igvm)
    def run(igvm, **options):
        out = run_igvm(igvm, **options)
        runs.append(out)
        return out
    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = (yield).get_result()
    runs = item.stash.get(_RUNS, None)
    if runs and report.failed and report.when == "call":
        for i, out in enumerate(runs, 1):
            head = f"pyvmm run {i} of {len(runs)}: status {out.status} ({out.outcome.name})"
            report.sections.append((f"{head}: guest serial output", out.text or "(no serial output)\n"))
            if out.result.message and out.status == 3:
                report.sections.append((f"{head}: register dump", out.result.message + "\n"))
            elif out.result.message:
                report.sections.append((f"{head}: how it ended", out.result.message + "\n"))


def _write_atomically(path: Path, text: str) -> None:
    """Temporary file in the same folder, then os.replace: a reader (or another xdist worker) sees the old
    snapshot or the new one, never a mix; the last writer of the same snapshot wins whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@pytest.fixture
def igvm_snapshot(request: pytest.FixtureRequest):
    """igvm_snapshot(name, igvm, **plan_options) -> the plan text; fails when it differs from the snapshot."""
    update = request.config.getoption("igvm_snapshot_update")
    folder = Path(request.path).parent / SNAPSHOT_DIR

    def check(name: str, igvm, **plan_options) -> str:
        from vmm.api import plan_text
        from vmm.plan_diff import compared, unified
        if not _NAME.match(name):
            raise ValueError(f"snapshot name {name!r}: use letters, digits and . _ + - only")
        path = folder / f"{name}.plan"
        text = plan_text(igvm, label=name, **plan_options)
        try:
            stored = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            stored = None
        if stored is not None and compared(stored.splitlines()) == compared(text.splitlines()):
            return text
        if update:
            _write_atomically(path, text)
            return text
        rel = os.path.relpath(path, request.config.rootpath)
        if stored is None:
            pytest.fail(f"igvm snapshot {rel} does not exist; run pytest with --igvm-snapshot-update to write it",
                        pytrace=False)
        diff = unified(stored.splitlines(), text.splitlines(), f"{rel} (snapshot)", f"{name} (now)")
        pytest.fail(f"igvm snapshot {rel} differs from the load plan (--igvm-snapshot-update rewrites it):\n"
                    + "\n".join(diff), pytrace=False)
    return check

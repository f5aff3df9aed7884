"""Shared fixtures: KVM and toolchain availability (skip here, fail under PYVMM_REQUIRE_KVM=1), guest runners."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REQUIRE_KVM = os.environ.get("PYVMM_REQUIRE_KVM") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_KVM:
        pytest.fail(f"PYVMM_REQUIRE_KVM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kvm_ok() -> None:
    """Use in any test that needs /dev/kvm (the same rule as the plugin's `kvm` marker)."""
    from vmm.pytest_plugin import require_kvm
    require_kvm()


@pytest.fixture(scope="session")
def toolchain_ok() -> None:
    """Use in any test that compiles a guest."""
    from tests.guests.build import toolchain_missing
    reason = toolchain_missing()
    if reason:
        _unavailable(reason)


@pytest.fixture
def guest(kvm_ok, toolchain_ok):
    """Build a guest from tests/guests and run it as a flat binary: guest(name, **opts) -> GuestRun."""
    from tests.guests.run import run_flat_guest
    return run_flat_guest

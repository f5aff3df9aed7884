"""Run options a user reaches for, through the pyvmm command: --trace rip, --symbols, --igvm-platform, --serial
file:PATH and none; and the ACPI PM fixed hardware (PM timer, PM1 control) as a guest that reads the FADT uses it.

The PM guest (tests/guests/pm_timer.c) spins on the PM timer for WAIT_MS in a function named pm_wait, which gives
--trace rip something to find, and prints one line on COM1 before it powers off (status 0).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.guests.build import build
from tests.linux_images import VMLINUX_LOAD

pytestmark = pytest.mark.usefixtures("kvm_ok", "toolchain_ok")

PM_LINE = "pm timer: {} ms passed\n"


def _pyvmm(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmm", *args], capture_output=True, text=True, timeout=timeout)


def _pm_guest(tmp_path, wait_ms: int) -> str:
    path = tmp_path / f"pm-{wait_ms}.elf"
    path.write_bytes(build("linux_start.S", extra_sources=("pm_timer.c",), load_addr=VMLINUX_LOAD, elf=True,
                           defines={"WAIT_MS": wait_ms}))
    return str(path)


def _nm(path: str) -> dict[str, tuple[int, int]]:
    """GNU nm's view of the function symbols: name -> (address, size)."""
    out = subprocess.run(["nm", "-S", path], capture_output=True, text=True, check=True).stdout
    return {f[3]: (int(f[0], 16), int(f[1], 16)) for f in (line.split() for line in out.splitlines()) if len(f) == 4}


def _rip_report(stderr: str) -> list[tuple[float, str]]:
    """(percent, where) lines of vCPU 0's --trace rip report."""
    assert re.search(r"pyvmm: trace: vCPU 0: \d+ RIP samples, top \d+:", stderr), stderr
    return [(float(m[1]), m[2]) for m in re.finditer(r"pyvmm: trace: +([\d.]+)% +\d+ +(\S+)", stderr)]


def test_the_pm_timer_runs_at_its_rate_and_pm1_control_powers_off(tmp_path):
    """The guest takes the ports from the FADT, waits 1 s of PM timer ticks (3.579545 MHz, never stepping back)
    and powers off through PM1a control: status 0 only if all of that held, after at least 1 s of host time."""
    guest = _pm_guest(tmp_path, 1000)
    t0 = time.monotonic()
    p = _pyvmm("--kernel", guest, "-m", "64M", "--timeout", "60")
    elapsed = time.monotonic() - t0
    assert (p.returncode, p.stdout) == (0, PM_LINE.format(1000)), p.stderr[-2000:]
    assert 1.0 <= elapsed < 30, elapsed          # a timer running fast ends the wait early


def test_trace_rip_names_the_function_the_guest_spins_in(tmp_path):
    guest = _pm_guest(tmp_path, 500)
    p = _pyvmm("--kernel", guest, "-m", "64M", "--trace", "rip", "--timeout", "60")
    assert (p.returncode, p.stdout) == (0, PM_LINE.format(500)), p.stderr[-2000:]
    top = _rip_report(p.stderr)
    assert top and top[0][1] == "pm_wait" and top[0][0] >= 50, top     # named from the --kernel ELF's symtab


def test_symbols_names_samples_of_a_stripped_kernel(tmp_path):
    guest = _pm_guest(tmp_path, 500)
    stripped = str(tmp_path / "stripped.elf")
    subprocess.run(["strip", "-o", stripped, guest], check=True)
    start, size = _nm(guest)["pm_wait"]
    # Without symbols the report gives addresses, and the busiest is inside pm_wait as GNU nm places it.
    p = _pyvmm("--kernel", stripped, "-m", "64M", "--trace", "rip", "--timeout", "60")
    assert p.returncode == 0, p.stderr[-2000:]
    top = _rip_report(p.stderr)
    assert "pm_wait" not in p.stderr and start <= int(top[0][1], 16) < start + size, (top, start, size)
    p = _pyvmm("--kernel", stripped, "-m", "64M", "--trace", "rip", "--symbols", guest, "--timeout", "60")
    assert p.returncode == 0, p.stderr[-2000:]
    assert _rip_report(p.stderr)[0][1] == "pm_wait"


@pytest.mark.parametrize("which, words", [("stripped", "no ELF symbol table"), ("missing", "cannot read")])
def test_symbols_from_a_file_without_them_is_one_line_and_status_2(tmp_path, which, words):
    guest = _pm_guest(tmp_path, 0)
    path = tmp_path / which
    if which == "stripped":
        subprocess.run(["strip", "-o", str(path), guest], check=True)
    p = _pyvmm("--kernel", guest, "-m", "64M", "--trace", "rip", "--symbols", str(path))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, p.stderr
    assert p.stdout == ""                        # refused before the guest ran


def test_serial_file_gets_the_console_and_stdout_nothing(tmp_path):
    guest = _pm_guest(tmp_path, 0)
    log = tmp_path / "console.txt"
    p = _pyvmm("--kernel", guest, "-m", "64M", "--serial", f"file:{log}")
    assert (p.returncode, p.stdout) == (0, ""), p.stderr
    assert log.read_text() == PM_LINE.format(0)


def test_serial_none_drops_the_console_and_the_run_is_the_same(tmp_path):
    guest = _pm_guest(tmp_path, 0)
    p = _pyvmm("--kernel", guest, "-m", "64M", "--serial", "none")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_serial_file_that_cannot_be_opened_is_one_line_and_status_2(tmp_path):
    guest = _pm_guest(tmp_path, 0)
    p = _pyvmm("--kernel", guest, "-m", "64M", "--serial", f"file:{tmp_path}/no/such/dir/log")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "cannot open" in p.stderr, p.stderr


@pytest.fixture(scope="module")
def two_platforms(tmp_path_factory):
    """One file, NATIVE exiting with 0x11 and VSM_ISOLATION with 0x22 (status (v << 1) | 1)."""
    from tests.igvm_guests import two_platform_igvm
    path = tmp_path_factory.mktemp("igvm") / "two.igvm"
    path.write_bytes(two_platform_igvm(build("hello.S", defines={"EXIT_CODE": 0x11}),
                                       build("hello.S", defines={"EXIT_CODE": 0x22})))
    return str(path)


@pytest.mark.parametrize("option, status", [((), 0x23), (("--igvm-platform", "native"), 0x23),
                                            (("--igvm-platform", "vsm_isolation"), 0x45)])
def test_igvm_platform_picks_which_platform_runs(two_platforms, option, status):
    p = _pyvmm("--igvm", two_platforms, "-m", "64M", *option)
    assert (p.returncode, p.stdout) == (status, "Hello from a pyvmm guest\n"), p.stderr


def test_igvm_platform_the_file_lacks_or_cannot_launch_is_status_2(tmp_path, two_platforms):
    from tests.igvm_guests import flat_igvm
    native_only = tmp_path / "native.igvm"
    native_only.write_bytes(flat_igvm("hello.S"))
    p = _pyvmm("--igvm", str(native_only), "-m", "64M", "--igvm-platform", "vsm_isolation")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no VSM_ISOLATION platform" in p.stderr, p.stderr
    p = _pyvmm("--igvm", two_platforms, "-m", "64M", "--igvm-platform", "cca")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--igvm-platform" in p.stderr, p.stderr
    p = _pyvmm("--igvm", two_platforms, "-m", "64M", "--igvm-platform", "sev_snp")   # a debug launch of SNP, but none
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no SEV_SNP platform" in p.stderr, p.stderr


"""Faults from below and around the VMM: KVM ioctls failing (every call of a launch in turn, ENOMEM on the memory
slot, EFAULT, EINTR storms on KVM_RUN), a full disk under --serial file:, a closed stdout or a reader that left
(EPIPE), SIGINT/SIGTERM/SIGHUP mid-run with the terminal restored, a vCPU thread dying, and create/destroy cycles
that must not leak file descriptors or memory. Each ends with a documented status and at most one line, never a
traceback or a hang."""

from __future__ import annotations

import errno
import os
import pty
import signal
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kvm.errors import KvmError
from tests.faults import EintrStorm, IoctlFaults, fail_at, fail_named
from tests.guests.run import run_flat_guest
from vmm.machine import Machine, MachineConfig, Outcome

ROOT = Path(__file__).resolve().parents[1]
HELLO_STATUS = (0x10 << 1) | 1
pytestmark = pytest.mark.usefixtures("kvm_ok", "toolchain_ok")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0])


# --- ioctls failing -----------------------------------------------------------------------------------------------
def test_every_ioctl_of_a_launch_failing_in_turn_ends_in_kvm_error_or_status_3(monkeypatch):
    """Count the ioctls one launch of a 2-vCPU guest makes, then fail each in turn (ENOMEM, EFAULT, EINVAL, EINTR
    by turns): each run raises KvmError (while building or loading) or ends FATAL with status 3 (while running),
    and every file descriptor is released."""
    counting = IoctlFaults(lambda n, i: None).install(monkeypatch.setattr)
    assert run_flat_guest("smp.S", cpus=2, defines={"NCPUS": 2}).status == (2 << 1) | 1
    total = len(counting.calls)
    assert total > 20, counting.calls
    base = fds()
    outcomes: dict[str, int] = {}
    errs = [errno.ENOMEM, errno.EFAULT, errno.EINVAL, errno.EINTR]
    for k in range(total):
        faults = fail_at(k, errs[k % 4]).install(monkeypatch.setattr)
        try:
            r = run_flat_guest("smp.S", cpus=2, defines={"NCPUS": 2}, timeout=20)
            kind = f"status {r.status}"
            assert r.status in ((2 << 1) | 1, 3), (k, counting.calls[k], r.result)
        except KvmError:
            kind = "KvmError"
        assert faults.injected == 1, (k, faults.calls[-3:])
        outcomes[kind] = outcomes.get(kind, 0) + 1
        assert fds() == base, (k, counting.calls[k])
    assert outcomes.get("KvmError", 0) > 10, outcomes


def test_enomem_on_the_memory_slot_via_the_cli_is_one_line_and_status_3(tmp_path):
    from tests.igvm_guests import flat_igvm
    f = tmp_path / "hello.igvm"
    f.write_bytes(flat_igvm("hello.S"))
    p = _cli_with_faults(["--igvm", str(f), "-m", "64M", "--serial", "none"],
                         "fail_named('KVM_SET_USER_MEMORY_REGION', errno.ENOMEM).install()")
    assert p.returncode == 3, p.stderr
    lines = p.stderr.splitlines()
    assert lines == [lines[0]] and lines[0].startswith("pyvmm: error: KVM: KVM_SET_USER_MEMORY_REGION"), p.stderr
    assert "Cannot allocate memory" in lines[0]


def test_efault_on_kvm_run_ends_the_run_fatal_not_hung(monkeypatch):
    class Efault(EintrStorm):
        pass
    storm = Efault(rate=1.0, err=errno.EFAULT).install(monkeypatch.setattr)
    started = time.monotonic()
    r = run_flat_guest("hello.S", timeout=20)
    assert r.result.outcome is Outcome.FATAL and r.status == 3, r.result
    assert "KVM_RUN" in r.result.message and time.monotonic() - started < 10
    assert storm.injected >= 1


@pytest.mark.parametrize("err", [errno.EINTR, errno.EAGAIN])
def test_an_eintr_storm_on_kvm_run_changes_nothing_the_guest_sees(monkeypatch, err):
    """The hostile guest's counts for a seed (one vCPU: deterministic) are the same with 60 % of KVM_RUN calls
    interrupted as without."""
    from tests.hostile import HEALTHY, hostile_image, run_hostile_machine
    image = hostile_image()
    calm = run_hostile_machine(seed=21, ops=300, cpus=1, image=image)
    storm = EintrStorm(rate=0.6, err=err).install(monkeypatch.setattr)
    stormy = run_hostile_machine(seed=21, ops=300, cpus=1, image=image)
    assert calm.status == stormy.status == HEALTHY, stormy.result
    assert stormy.counts == calm.counts
    assert storm.injected > 300 and storm.passed > 300


def test_an_eintr_storm_does_not_delay_the_timeout(monkeypatch):
    EintrStorm(rate=0.9).install(monkeypatch.setattr)
    started = time.monotonic()
    r = run_flat_guest("inloop.S", timeout=1.0)
    assert r.result.outcome is Outcome.TIMEOUT and time.monotonic() - started < 4


# --- a vCPU thread dying --------------------------------------------------------------------------------------------
def test_a_vcpu_thread_dying_ends_the_run_with_status_3_and_a_dump(monkeypatch):
    """A VMM bug on a vCPU thread (here: the port bus raising on its 50th exit, while the hostile guest hammers it
    from two vCPUs) must not hang the run or lose the status: FATAL, 3, the error and that vCPU's register dump."""
    from chipset.bus import PortBus
    from tests.hostile import run_hostile_machine
    real, calls = PortBus.pio, [0]

    def broken(self, *a):
        calls[0] += 1
        if calls[0] == 50:
            raise RuntimeError("injected device failure")
        return real(self, *a)
    monkeypatch.setattr(PortBus, "pio", broken)
    r = run_hostile_machine(seed=4, ops=0, cpus=2, timeout=30)      # ops=0: forever, unless the VMM stops it
    assert r.result.outcome is Outcome.FATAL and r.status == 3, r.result
    msg = r.result.message
    assert "VMM error: RuntimeError('injected device failure')" in msg
    assert "RIP=" in msg and "CR3=" in msg and "code at GPA" in msg, msg
    assert r.seconds < 15


# --- serial output failing ------------------------------------------------------------------------------------------
def _hello_file(tmp_path: Path) -> str:
    from tests.igvm_guests import flat_igvm
    f = tmp_path / "hello.igvm"
    f.write_bytes(flat_igvm("hello.S"))
    return str(f)


def _cli(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmm", *argv], cwd=ROOT, capture_output="stdout" not in kw,
                          text=True, timeout=60, **kw)


def _cli_with_faults(argv: list[str], setup: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import errno, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.faults import *
        {setup}
        from vmm.cli import main
        sys.exit(main({argv!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_full_disk_under_serial_file_drops_output_and_the_guest_finishes(tmp_path):
    p = _cli(["--igvm", _hello_file(tmp_path), "-m", "64M", "--serial", "file:/dev/full"])
    assert p.returncode == HELLO_STATUS, p.stderr
    assert p.stderr.splitlines() == ["pyvmm: serial output to /dev/full failed (No space left on device); "
                                     "the guest runs on, its output is dropped"], p.stderr


def test_a_reader_that_left_epipe_drops_output_and_the_guest_finishes(tmp_path):
    r, w = os.pipe()
    os.close(r)                                     # no reader: the first write fails with EPIPE
    try:
        p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", _hello_file(tmp_path), "-m", "64M"], cwd=ROOT,
                           stdout=w, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=60)
    finally:
        os.close(w)
    assert p.returncode == HELLO_STATUS, p.stderr
    assert p.stderr.splitlines() == ["pyvmm: serial output to stdout failed (Broken pipe); the guest runs on, its "
                                     "output is dropped"], p.stderr


def test_a_closed_stdout_drops_output_and_the_guest_finishes(tmp_path):
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", _hello_file(tmp_path), "-m", "64M"], cwd=ROOT,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=60,
                       preexec_fn=lambda: os.close(1))
    assert p.returncode == HELLO_STATUS, p.stderr
    assert p.stderr.splitlines() == ["pyvmm: serial output to stdout failed (Bad file descriptor); the guest runs "
                                     "on, its output is dropped"], p.stderr


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


# --- signals mid-run ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_run_restores_the_terminal_and_ends_with_128_plus_n(tmp_path, sig):
    """On a terminal (a pty here) pyvmm puts stdin in raw mode; a signal mid-run must stop every vCPU, give the
    terminal its settings back and exit 128 + N with one line, as QEMU stops cleanly on the same signals."""
    from loaders.igvm.pack import pack_flat_image
    from tests.hostile import hostile_image
    f = tmp_path / "forever.igvm"
    f.write_bytes(pack_flat_image(hostile_image()))     # no parameter block: hammers ports forever
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    threading.Thread(target=_drain, args=(master,), daemon=True).start()   # a terminal someone reads
    argv = ["--igvm", str(f), "-m", "64M", "-p", "2", "--no-vmfwupdate"]   # no refusal lines on stderr
    p = subprocess.Popen([sys.executable, "-m", "vmm", *argv], cwd=ROOT, stdin=slave, stdout=slave,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while termios.tcgetattr(slave)[3] & termios.ICANON:          # wait for raw mode: the run has started
            assert time.monotonic() < deadline and p.poll() is None, p.poll()
            time.sleep(0.05)
        time.sleep(0.5)
        p.send_signal(sig)
        _, err = p.communicate(timeout=20)
        after = termios.tcgetattr(slave)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(slave)
        os.close(master)
    assert p.returncode == 128 + sig, err
    assert err.splitlines() == [f"pyvmm: terminating on signal {int(sig)} ({sig.name})"], err
    assert after == before


# --- create/destroy cycles ------------------------------------------------------------------------------------------
def trimmed_rss_kib() -> int:
    """Resident anonymous memory after glibc returns its free heap (malloc_trim): what is still allocated. Without
    the trim, RSS climbs for the first ~100 cycles to glibc's high-water mark and then stays there."""
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(Path("/proc/self/status").read_text().split("RssAnon:")[1].split()[0])


def test_create_destroy_cycles_leak_no_fds_and_no_memory():
    """tests/bench/campaign_faults.py runs 1,000 of these; here 60, after 10 to warm up allocators and caches."""
    import gc
    import tracemalloc
    cfg = MachineConfig(memory=64 << 20, cpus=2)
    for _ in range(10):
        with Machine(cfg) as m:
            m.memory.write(0x1000, b"x" * 4096)
    m = None                                   # a closed machine still holds its port table until dropped
    gc.collect()
    tracemalloc.start()
    f0, r0, p0 = fds(), trimmed_rss_kib(), tracemalloc.get_traced_memory()[0]
    try:
        for _ in range(60):
            with Machine(cfg) as m:
                m.memory.write(0x1000, b"x" * 4096)
        m = None
        gc.collect()
        grown_py = tracemalloc.get_traced_memory()[0] - p0
    finally:
        tracemalloc.stop()
    assert fds() == f0
    assert grown_py < 64 << 10, grown_py
    assert trimmed_rss_kib() - r0 < 2048, (r0, trimmed_rss_kib())

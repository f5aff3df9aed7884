"""The QEMU-style console escapes: ctrl-a x quits, ctrl-a ctrl-a sends one ctrl-a, other bytes pass through."""

from vmm.console import StdinPump


def _pump():
    quits = []
    p = StdinPump(feed=lambda d: None, quit=lambda: quits.append(1))
    p.interactive = True
    return p, quits


def test_ctrl_a_x_quits_and_drops_the_rest():
    p, quits = _pump()
    assert p.filter(b"ab\x01xcd") == b"ab"
    assert quits == [1]


def test_ctrl_a_ctrl_a_sends_one_and_escape_spans_reads():
    p, quits = _pump()
    assert p.filter(b"\x01\x01z") == b"\x01z"
    assert p.filter(b"q\x01") == b"q"
    assert p.filter(b"x") == b""
    assert quits == [1]


def test_piped_stdin_is_passed_through_untouched():
    p, quits = _pump()
    p.interactive = False
    assert p.filter(b"\x01x") == b"\x01x" and not quits


def test_serial_feed_keeps_bytes_until_a_machine_exists():
    from vmm.console import SerialFeed
    got = []

    class M:
        def serial_input(self, data):
            got.append(data)
    f = SerialFeed()
    f.feed(b"early ")
    f.attach(M())
    f.feed(b"late")
    f.attach(None)
    f.feed(b" between")
    f.attach(M())
    assert b"".join(got) == b"early late between"


def test_piped_stdin_reaches_com1(kvm_ok, toolchain_ok, tmp_path):
    """A test can type: bytes piped to pyvmm's stdin arrive on COM1 (tests/guests/echo.S echoes them)."""
    import subprocess
    import sys

    from loaders.igvm.pack import pack_flat_image
    from tests.guests.build import build
    path = tmp_path / "echo.igvm"
    path.write_bytes(pack_flat_image(build("echo.S")))
    p = subprocess.run([sys.executable, "-m", "vmm", "--igvm", str(path), "-m", "64M", "--timeout", "30"],
                       input=b"pyvmm echo!q", capture_output=True)
    assert p.stdout == b"PYVMM ECHO!" and p.returncode == (0x21 << 1) | 1, p.stderr

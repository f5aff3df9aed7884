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

"""`--trace milestones`: how far firmware got, read from the devices it touches and from COM1."""

from vmm.milestones import FIRST_SERIAL, RESET_VECTOR, SHELL, Milestones, strip_ansi


def test_shell_prompt_found_through_ansi_escapes_and_split_writes():
    lines, now = [], [10.0]
    ms = Milestones(lines.append, clock=lambda: now[0])
    ms.started()
    now[0] = 12.5
    ms.serial(b"\x1b[2J\x1b[01;01H")
    assert list(ms.reached) == [FIRST_SERIAL] and ms.reached[FIRST_SERIAL] == 2.5
    ms.serial(b"\x1b[08;01H\x1b[1m\x1b[33m\x1b[40mShe")        # the prompt as OVMF sends it, in two pieces
    assert SHELL not in ms.reached
    now[0] = 20.0
    ms.serial(b"ll> \x1b[0m\x1b[37m\x1b[40m")
    assert ms.reached[SHELL] == 10.0
    ms.serial(b"Shell> ")
    assert lines == ["pyvmm: milestone: first serial byte at 2.500 s", "pyvmm: milestone: shell at 10.000 s"]


def test_strip_ansi():
    assert strip_ansi("\x1b[=3h\x1b[1;33mA\r\nB") == "A\nB"


def test_rom_guest_reaches_its_milestones(kvm_ok, toolchain_ok):
    from tests.guests.build import build
    from tests.guests.run import run_rom
    ms = Milestones(lambda line: None)
    r = run_rom(build("reset_rom.S", load_addr=0, code16=True), milestones=ms, debugcon=lambda data: None)
    assert r.status == (0x30 << 1) | 1
    assert set(ms.reached) == {RESET_VECTOR, FIRST_SERIAL}
    assert ms.reached[RESET_VECTOR] <= ms.reached[FIRST_SERIAL]

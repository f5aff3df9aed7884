"""The in-kernel PIT made at the guest's first access to ports 0x40-0x43/0x61 (vmm.lazy_pit): guests check it
behaves as a PIT made with the VM, and KVM's own PIT state (KVM_GET_PIT2) after a guest's accesses on a machine
that had the PIT from the start is the oracle for the lazy machine and for pyvmm's 8254 write model."""

from __future__ import annotations

import errno

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvm import KvmError
from loaders.flat import flat_plan
from vmm.lazy_pit import pit_write
from vmm.machine import Machine, MachineConfig

pytestmark = pytest.mark.usefixtures("kvm_ok", "toolchain_ok")

OK = 0x21                       # the guests' debug exit 0x10
SEQ = 0x200000                  # where pit_sequence.S reads its list
PORTS = (0x40, 0x41, 0x42, 0x43, 0x61)
OUT, IN, OUTSB, INSB, OUTW, INW = 1, 2, 3, 4, 5, 6


def run_guest(name: str, lazy: bool = True, defines: dict[str, int] | None = None, data: bytes = b"",
              timeout: float = 10.0):
    """Run a tests/guests flat guest; (RunResult, whether the VM had a PIT at the end, its KVM_GET_PIT2 state)."""
    from tests.guests.build import build
    image = build(name, defines=defines)
    with Machine(MachineConfig(memory=64 << 20, lazy_pit=lazy)) as m:
        m.load(flat_plan(image))
        if data:
            m.memory.write(SEQ, data)
        result = m.run(timeout)
        created = m.pit_created
        state = m.vm.get_pit2() if created else None
    return result, created, state


def pit_view(state) -> tuple:
    """The PIT state less what depends on when it is read: load times, latched counts, status bit 7 (OUT)."""
    return state.flags, [(c.count, c.count_latched, c.status_latched, c.status & 0x7F, c.read_state, c.write_state,
                          c.write_latch, c.rw_mode, c.mode, c.bcd, c.gate) for c in state.channels]


@pytest.mark.parametrize("first", [1, 2, 3, 4, 5, 6, 9])
@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "eager"])
def test_the_first_pit_access_has_its_effect(first, lazy):
    """pit_first.S: the first access is a control word (OUT, OUTSB), a 0x61 read (IN, INSB, IN after STI) or a
    gate write (OUT, OUTSB); the guest then checks IRQ0, falling counts, 0x61's bits and OUT2 as a PC's PIT has
    them."""
    result, created, _ = run_guest("pit_first.S", lazy, {"FIRST": first})
    assert result.status == OK, result
    assert created


def test_vcpus_racing_to_the_first_access_make_one_pit(guest):
    """Four vCPUs read port 0x61 at once: one creates the PIT (a second KVM_CREATE_PIT2 would fail with EEXIST
    and end the run), and every read comes from it."""
    for _ in range(3):
        r = guest("pit_smp.S", cpus=4, defines={"NCPUS": 4}, timeout=20)
        assert r.status == OK, r.result


def test_a_first_read_of_a_counter_reads_the_kernels_counter():
    """A first IN of channel 2's counter must come from the in-kernel PIT (counting down since its creation), not
    be lost (KVM hands a lost IN 0): the counter's low byte is 0 one time in 256, so of 4 fresh machines at least
    one reads nonzero."""
    statuses = [run_guest("pit_first.S", True, {"FIRST": 8})[0].status for _ in range(4)]
    assert set(statuses) <= {OK, 7 << 1 | 1}, statuses
    assert OK in statuses, statuses


def test_a_guest_that_never_touches_the_pit_gets_none():
    """No PIT, which KVM confirms (KVM_GET_PIT2: ENXIO); an access no PIT device takes (a 2-byte OUT to 0x43)
    does not make one either. With lazy_pit=False the VM has it from the start."""
    from tests.guests.build import build
    for name, defines in (("hello.S", None), ("pit_first.S", {"FIRST": 7})):
        with Machine(MachineConfig(memory=64 << 20)) as m:
            m.load(flat_plan(build(name, defines=defines)))
            assert m.run(10).status == OK
            assert not m.pit_created
            with pytest.raises(KvmError) as e:
                m.vm.get_pit2()
            assert e.value.errno == errno.ENXIO
    with Machine(MachineConfig(memory=64 << 20, lazy_pit=False)) as m:
        assert m.pit_created
        m.vm.get_pit2()


def pack(seq) -> bytes:
    return b"".join(bytes((kind << 4 | port, value)) for kind, port, value in seq) + b"\0\0"


# Ports weighted to the control port and channels 0 and 2; values mixed with control words guests write (modes
# 0-3 and 6-7, lo/hi and lo-only access, counter latches, read-back commands).
PORT = st.sampled_from([0, 0, 1, 2, 2, 3, 3, 3, 3, 4])
VALUE = st.one_of(st.sampled_from([0x34, 0x36, 0x30, 0x3C, 0x3E, 0x14, 0xB0, 0xB6, 0x94, 0x74, 0x00, 0x80, 0xC2,
                                   0xE2, 0xD8, 0xF4, 0x01, 0x03]), st.integers(0, 255))
ACCESS = st.tuples(st.sampled_from([OUT, IN, OUTSB, INSB, OUTW, INW]), PORT, VALUE)
WRITE = st.tuples(st.sampled_from([OUT, OUT, OUTSB, OUTW]), PORT, VALUE)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(ACCESS, min_size=1, max_size=8))
def test_lazy_and_eager_pits_agree_after_any_accesses(seq):
    """pit_sequence.S performs the accesses; the first makes the lazy machine's PIT (replayed in the kernel, or
    through the write model for OUTSB). KVM's state must then be the one a PIT made with the VM reaches."""
    eager, created, want = run_guest("pit_sequence.S", False, data=pack(seq))
    assert eager.status == OK and created
    lazy, created, got = run_guest("pit_sequence.S", True, data=pack(seq))
    assert lazy.status == OK, lazy
    if not created:         # only accesses no PIT device takes: then the eager PIT saw none either
        assert all(kind in (OUTW, INW) and PORTS[port] == 0x43 for kind, port, _ in seq)
        return
    assert pit_view(got) == pit_view(want)


@pytest.fixture(scope="module")
def fresh_pit_state():
    """A new in-kernel PIT's state, from KVM."""
    from kvm import Kvm
    with Kvm() as kvm, kvm.create_vm() as vm:
        vm.create_irqchip()
        vm.create_pit2()
        return vm.get_pit2()


@SETTINGS
@given(seq=st.lists(WRITE, min_size=1, max_size=10))
def test_the_write_model_matches_kvms_pit(fresh_pit_state, seq):
    """vmm.lazy_pit.pit_write over a list of writes, from a new PIT's state, against KVM's PIT after a guest
    made the same writes (2-byte writes at 0x43 reach no PIT device and are left out of the model)."""
    import ctypes
    _, _, want = run_guest("pit_sequence.S", False, data=pack(seq))
    state = type(fresh_pit_state).from_buffer_copy(fresh_pit_state)
    for kind, port, value in seq:
        if not (kind == OUTW and PORTS[port] == 0x43):
            pit_write(state, PORTS[port], value, now=0)
    assert ctypes.sizeof(state) == ctypes.sizeof(want)
    assert pit_view(state) == pit_view(want)

"""Host parameters written into IGVM parameter areas (pure: no KVM)."""

import struct

import pytest
from hypothesis import given, strategies as st

from loaders.errors import LoadError
from loaders.igvm.parameters import fill_area, parse_memory_map
from loaders.plan import ParameterRequest
from vmm.host import host_info
from vmm.memory import MMIO_HOLE_END, MMIO_HOLE_START


@given(st.integers(1, 1 << 16).map(lambda mib: mib << 20), st.integers(1, 255))
def test_memory_map_is_the_ram_layout_without_the_hole(memory, cpus):
    host = host_info(memory, cpus)
    area = fill_area(ParameterRequest(0, 4096, usages=[("MEMORY_MAP", 0), ("VP_COUNT_PARAMETER", 4092)]), host)
    entries = parse_memory_map(area[:4092])
    assert sum(s for _, s, _ in entries) == memory
    assert all(t == 0 for _, _, t in entries)
    assert [g for g, _, _ in entries] == sorted(g for g, _, _ in entries)
    assert not any(g < MMIO_HOLE_END and g + s > MMIO_HOLE_START for g, s, _ in entries)
    assert struct.unpack_from("<I", area, 4092)[0] == cpus


def test_command_line_replaces_the_files_default_only_when_given():
    req = ParameterRequest(0, 4096, initial=b"default words\0".ljust(4096, b"\0"), usages=[("COMMAND_LINE", 0)])
    assert bytes(fill_area(req, host_info(1 << 30, 1))).startswith(b"default words\0")
    assert bytes(fill_area(req, host_info(1 << 30, 1, "mine"))).startswith(b"mine\0")
    with pytest.raises(LoadError, match="NUL byte at position 2"):
        fill_area(req, host_info(1 << 30, 1, "ab\0c"))


def test_a_value_that_does_not_fit_is_refused():
    with pytest.raises(LoadError, match="COMMAND_LINE needs 0x1001 bytes at offset 0x0, but parameter area 3 holds "
                                        "only 0x1000 bytes"):
        fill_area(ParameterRequest(3, 4096, usages=[("COMMAND_LINE", 0)]), host_info(1 << 30, 1, "x" * 4096))


def test_environment_info_says_memory_is_private():
    area = fill_area(ParameterRequest(0, 4096, usages=[("ENVIRONMENT_INFO_PARAMETER", 8)]), host_info(1 << 30, 1))
    assert struct.unpack_from("<I", area, 8)[0] == 0


@pytest.mark.parametrize("cpus", [1, 3])
def test_slit_and_pptt_are_always_filled_where_openvmm_may_skip_them(cpus):
    """OpenVMM (openvmm_core vm_loaders/igvm.rs) warns and leaves a SLIT or PPTT area untouched when its machine
    has none. pyvmm's machine always has both (one locality; one socket of single-threaded cores), so a file that
    asks gets them; a HostInfo without one (library use) is refused, never left as a zero area."""
    from loaders.record import replace

    from loaders.acpi import parse_table
    host = host_info(1 << 30, cpus)
    area = bytes(fill_area(ParameterRequest(0, 8192, usages=[("SLIT", 0), ("PPTT", 4096)]), host))
    slit, pptt = parse_table(area[:4096]), parse_table(area[4096:])
    assert (slit.signature, slit.checksum_ok, area[36:45]) == ("SLIT", True, struct.pack("<QB", 1, 10))
    assert pptt.signature == "PPTT" and pptt.checksum_ok
    assert sorted(e["uid"] for e in pptt.entries if e["flags"] & 8) == list(range(1, cpus + 1))   # leaf per vCPU
    for usage in ("SLIT", "PPTT"):
        with pytest.raises(LoadError, match=f"the machine has no {usage} table to give"):
            fill_area(ParameterRequest(0, 4096, usages=[(usage, 0)]), replace(host, **{usage.lower(): b""}))


def test_a_relaunch_zeroes_the_unwritten_rest_of_a_parameter_area():
    """Only an area's written prefix is held (a file's claimed size is not allocated); a fresh guest's RAM is
    zero already, but on a relaunch (reset) the machine must zero the rest of the area the guest may have
    scribbled on. Machine.load is driven on real GuestMemory with no vCPUs: the plan has no VP 0, so load
    stops with LoadError right after applying memory."""
    from loaders.plan import LoadPlan
    from vmm.machine import Machine
    from vmm.memory import GuestMemory
    host = host_info(16 << 20, 1)
    req = ParameterRequest(0, 0x10000, usages=[("VP_COUNT_PARAMETER", 0)], gpa=0x100000)
    req.data = fill_area(req, host)
    assert len(req.data) == 0x1000          # the prefix only, not the 64 KiB the area claims
    plan = LoadPlan(parameters=[req])
    with GuestMemory(16 << 20) as mem:
        m = Machine.__new__(Machine)
        m.memory, m._fresh = mem, True
        with pytest.raises(LoadError, match="no register state for VP 0"):
            m.load(plan)
        mem.write(0x100000, b"\xcc" * 0x10000)   # the guest scribbles over the whole area, then resets
        with pytest.raises(LoadError, match="no register state for VP 0"):
            m.load(plan)
        assert mem.read(0x100000, 4) == struct.pack("<I", 1)
        assert mem.read(0x100004, 0x10000 - 4) == bytes(0x10000 - 4)

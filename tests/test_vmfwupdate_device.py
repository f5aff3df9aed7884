"""The vmfwupdate device model (chipset.vmfwupdate) without KVM: every read-back rule, the write-time checks,
rate-limited logging, hypothesis over arbitrary write sequences, and the file written through fw_cfg DMA."""

from __future__ import annotations

import struct

from hypothesis import given, settings, strategies as st

from chipset.fw_cfg import DMA_ACCESS, DmaControl, FwCfg, FwCfgItems, Offset
from chipset.ram import FlatRam
from chipset.vmfwupdate import DISABLE, FILE_NAME, FORMAT_IGVM, LAYOUT, MAX_IMAGE, VmFwUpdate
from vmm.memory import ram_layout

CAPS = 1 << 32
MiB, GiB = 1 << 20, 1 << 30
RAM_5G = ram_layout(5 * GiB)          # 0-3 GiB, 4-6 GiB: an MMIO hole in between


def device(ram=None, lines=None, clock=lambda: 0.0) -> VmFwUpdate:
    return VmFwUpdate(ram or RAM_5G, log=(lines.append if lines is not None else lambda s: None), clock=clock)


def fields(raw: bytes) -> tuple[int, int, int, int]:
    return LAYOUT.unpack(raw)


def u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def test_initial_state_and_capabilities_are_read_only():
    d = device()
    assert fields(d.encode()) == (CAPS, 0, 0, 0)
    assert fields(d.write(0, b"\xff" * 8)) == (CAPS, 0, 0, 0)       # covering caps is not an error
    assert fields(d.write(4, b"\x00" * 4)) == (CAPS, 0, 0, 0)
    assert d.pending() is None


def test_whole_struct_write_is_accepted_and_pending():
    d = device()
    raw = LAYOUT.pack(0, FORMAT_IGVM, 0x200000, 0x10000)
    assert fields(d.write(0, raw)) == (CAPS, FORMAT_IGVM, 0x200000, 0x10000)
    assert d.pending() == (0x200000, 0x10000)


def test_unknown_control_bits_are_dropped():
    d = device()
    assert fields(d.write(8, u64(0xFFFF_FFFF_FFFF_FFFE)))[1] == FORMAT_IGVM


def test_address_and_size_need_the_format_bit_first():
    lines: list[str] = []
    d = device(lines=lines)
    assert fields(d.write(16, u64(0x200000) + u64(0x1000))) == (CAPS, 0, 0, 0)
    assert "FORMAT_IGVM" in lines[0]
    d.write(8, u64(FORMAT_IGVM))
    assert fields(d.write(16, u64(0x200000) + u64(0x1000)))[2:] == (0x200000, 0x1000)
    assert fields(d.write(8, u64(0)))[1:] == (0, 0, 0)                   # clearing the format drops the request
    assert d.pending() is None


def test_split_writes_address_then_size_and_size_then_address():
    d = device()
    d.write(8, u64(FORMAT_IGVM))
    assert fields(d.write(16, u64(0x300000)))[2:] == (0x300000, 0)
    assert d.pending() is None
    assert fields(d.write(24, u64(0x2000)))[2:] == (0x300000, 0x2000)
    assert d.pending() == (0x300000, 0x2000)
    e = device()
    e.write(8, u64(FORMAT_IGVM))
    e.write(24, u64(0x2000))
    assert fields(e.write(16, u64(0x300000)))[2:] == (0x300000, 0x2000)


def test_disable_is_sticky_clears_the_request_and_freezes_everything():
    d = device()
    d.write(0, LAYOUT.pack(0, FORMAT_IGVM, 0x200000, 0x1000))
    assert fields(d.write(8, u64(DISABLE | FORMAT_IGVM)))[1:] == (DISABLE, 0, 0)
    assert d.pending() is None
    for off, data in ((8, u64(0)), (8, u64(FORMAT_IGVM)), (0, LAYOUT.pack(0, FORMAT_IGVM, 0x200000, 0x1000)),
                      (16, u64(0x200000)), (8, b"\0")):
        assert fields(d.write(off, data)) == (CAPS, DISABLE, 0, 0)


def test_write_time_checks_read_back_zero_and_log():
    ram = ram_layout(5 * GiB)
    refused = [
        (0x200000, 0, "size is 0"),
        (2**64 - 0x1000, 0x2000, "overflows"),
        (3 * GiB - 0x1000, 0x2000, "not inside"),                 # runs into the MMIO hole
        (3 * GiB + 0x1000, 0x1000, "not inside"),                 # in the hole
        (6 * GiB - 0x1000, 0x2000, "not inside"),                 # past the end of RAM
        (0x100000, MAX_IMAGE + 0x1000, "larger than"),
    ]
    for addr, size, why in refused:
        lines: list[str] = []
        d = device(ram, lines)
        assert fields(d.write(0, LAYOUT.pack(0, FORMAT_IGVM, addr, size))) == (CAPS, FORMAT_IGVM, 0, 0), why
        assert len(lines) == 1 and why in lines[0] and lines[0].startswith("pyvmm: vmfwupdate:"), lines
    small = device([(0, 64 * MiB)])                                # min(RAM, 256 MiB) is RAM here
    assert fields(small.write(0, LAYOUT.pack(0, FORMAT_IGVM, 0, 64 * MiB)))[2:] == (0, 64 * MiB)
    assert fields(small.write(0, LAYOUT.pack(0, FORMAT_IGVM, 0x1000, 64 * MiB)))[2:] == (0, 0)
    high = device(ram)                                              # above 4 GiB is fine, up to the end of RAM
    assert fields(high.write(0, LAYOUT.pack(0, FORMAT_IGVM, 6 * GiB - 0x2000, 0x2000)))[2:] == (6 * GiB - 0x2000,
                                                                                                   0x2000)


def test_refusal_lines_are_rate_limited():
    lines: list[str] = []
    now = [100.0]
    d = device(lines=lines, clock=lambda: now[0])
    d.write(8, u64(FORMAT_IGVM))
    for _ in range(1000):
        d.write(24, u64(0))
    assert len(lines) == 1
    now[0] += 2.0
    d.write(24, u64(0))
    assert len(lines) == 2 and "999 similar lines suppressed" in lines[1]


writes = st.lists(st.tuples(st.integers(0, 31), st.binary(min_size=1, max_size=32)), max_size=12)
interesting = st.sampled_from([0, DISABLE, FORMAT_IGVM, FORMAT_IGVM | DISABLE, 0x1000, 3 * GiB - 0x1000,
                               4 * GiB, 2**64 - 1, MAX_IMAGE])
struct_writes = st.lists(st.tuples(st.sampled_from([0, 8, 16, 24]),
                                   st.lists(interesting, min_size=1, max_size=4)), max_size=10)


def _check_invariants(d: VmFwUpdate, before: tuple, after: tuple) -> None:
    caps, control, addr, size = after
    assert caps == CAPS
    assert control & ~(DISABLE | FORMAT_IGVM) == 0
    if before[1] & DISABLE:
        assert after == before                                      # frozen until reset
    if control & DISABLE:
        assert (control, addr, size) == (DISABLE, 0, 0)
    if addr or size:
        assert control == FORMAT_IGVM
    if size:
        assert 0 < size <= min(d.ram_size, MAX_IMAGE) and addr + size < 2**64
        assert any(g <= addr and addr + size <= g + n for g, n in d.ram)
    assert d.pending() == ((addr, size) if control == FORMAT_IGVM and size else None)


def _run(seq) -> None:
    lines: list[str] = []
    d = device(lines=lines)
    state = fields(d.encode())
    for off, data in seq:
        data = data[:32 - off]
        after = fields(d.write(off, data))
        _check_invariants(d, state, after)
        if not state[1] & DISABLE and off >= 8 and off + len(data) <= 16 and not after[1] & DISABLE:
            assert after[1] == int.from_bytes(LAYOUT.pack(*state)[8:off] + data
                                              + LAYOUT.pack(*state)[off + len(data):16], "little") & FORMAT_IGVM
        state = after
    assert len(lines) <= 1                                           # a frozen clock: one line at most


@settings(max_examples=400, deadline=None)
@given(writes)
def test_any_byte_write_sequence_keeps_the_rules(seq):
    _run(seq)


@settings(max_examples=400, deadline=None)
@given(struct_writes)
def test_any_field_write_sequence_keeps_the_rules(seq):
    _run([(off, b"".join(u64(v) for v in vals)) for off, vals in seq])


# --- through fw_cfg DMA ---------------------------------------------------------------------------------------------
def dma(dev: FwCfg, ram: FlatRam, control: int, length: int, address: int) -> int:
    ram.write(0x100, DMA_ACCESS.pack(control, length, address))
    dev.io_write(Offset.DMA_LOW, 4, int.from_bytes((0x100).to_bytes(4, "big"), "little"))
    return struct.unpack(">I", ram.read(0x100, 4))[0]


def test_dma_write_with_skip_reaches_the_shadow_and_reads_back_accepted_values():
    ram = FlatRam([(0, 16 * MiB)])
    model = VmFwUpdate([(0, 16 * MiB)], log=lambda s: None)
    dev = FwCfg(ram, FwCfgItems({}, [model.file()]))
    sel = 0x20                                                      # the only file
    ram.write(0x1000, LAYOUT.pack(7, FORMAT_IGVM | 0x80, 0x400000, 0))   # caps overwritten, an unknown bit
    assert dma(dev, ram, DmaControl.SELECT | DmaControl.WRITE | sel << 16, 24, 0x1000) == 0
    ram.write(0x2000, u64(0x3000))                                  # the size alone: SKIP 24, WRITE 8
    assert dma(dev, ram, DmaControl.SELECT | DmaControl.SKIP | sel << 16, 24, 0) == 0
    assert dma(dev, ram, DmaControl.WRITE, 8, 0x2000) == 0
    assert model.pending() == (0x400000, 0x3000)
    assert dma(dev, ram, DmaControl.SELECT | DmaControl.READ | sel << 16, 32, 0x3000) == 0
    assert fields(ram.read(0x3000, 32)) == (CAPS, FORMAT_IGVM, 0x400000, 0x3000)
    assert dma(dev, ram, DmaControl.SELECT | DmaControl.SKIP | sel << 16, 30, 0) == 0
    assert dma(dev, ram, DmaControl.WRITE, 4, 0x2000) == DmaControl.ERROR   # past the 32 bytes: nothing applied
    assert model.pending() == (0x400000, 0x3000)
    assert model.file().name == FILE_NAME


# --- the reset-time validation (vmm.vmfwupdate.plan_update), without KVM ---------------------------------------------
def _image(**kw) -> bytes:
    from loaders.igvm.pack import pack_flat_image
    return pack_flat_image(b"\xf4" * 64, **kw)


def test_plan_update_accepts_a_native_file_and_fills_it_for_this_machine():
    from loaders.igvm import HeaderType
    from loaders.igvm.pack import ParamSpec
    from vmm.vmfwupdate import plan_update
    raw = _image(params=(ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x20000),))
    plan = plan_update(raw, 0x2000000, len(raw), 64 * MiB, 3)
    assert 0 in plan.vps and plan.vps[0].regs["rip"] == 0x100000
    assert [bytes(p.data[:4]) for p in plan.parameters] == [(3).to_bytes(4, "little")]


def test_plan_update_refusals_name_why():
    import pytest
    from loaders.errors import LoadError
    from loaders.igvm import HeaderType, IgvmBuilder, Platform
    from loaders.igvm.pack import ParamSpec
    from vmm.vmfwupdate import plan_update
    ok = _image()
    snp = IgvmBuilder(version=2)
    snp.pages(0x100000, b"\xf4", snp.platform(Platform.SEV_SNP))
    no_context = IgvmBuilder(version=2)
    no_context.pages(0x100000, b"\xf4", no_context.platform(Platform.NATIVE))
    cases = [
        (b"XGVM" + ok[4:], 0x2000000, "magic"),
        (ok[:100], 0x2000000, "does not match the file's length"),
        (snp.build(), 0x2000000, "no platform pyvmm can launch"),
        (no_context.build(), 0x2000000, "no NATIVE VP context for VP 0"),
        (_image(params=(ParamSpec(HeaderType.VP_COUNT_PARAMETER, 0x2000000),)), 0x2000000, "overlaps the image"),
        (ok, 0x100000 - 0x800, "overlaps the image"),                  # the buffer runs into the code page
        (_image(required_memory=((0, 128 * MiB),)), 0x2000000, "requires RAM"),
        (_image(load_addr=96 * MiB), 0x2000000, "not inside guest RAM"),
    ]
    for raw, addr, why in cases:
        with pytest.raises(LoadError, match=why):
            plan_update(raw, addr, len(raw), 64 * MiB, 1)


# --- the image copy's memory (vmm.vmfwupdate.fault_in), without KVM ---------------------------------------------------
def _resident(addr: int, size: int) -> int:
    """Bytes of [addr, addr+size) resident in this process (mincore), a page at a time."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    pages = size // 4096
    vec = ctypes.create_string_buffer(pages)
    assert libc.mincore(addr, size, vec) == 0, ctypes.get_errno()
    return sum(b & 1 for b in vec.raw) * 4096


def test_the_copy_is_faulted_in_whole_with_huge_pages_or_after_a_slow_step_with_small_ones(monkeypatch):
    """Both ways fault in every byte (the copy then costs no page fault), and the copy holds what was copied in."""
    import ctypes
    import os
    from kvm.mman import HostMapping
    import vmm.vmfwupdate as v
    size = 3 * v.STEP + 5 * 4096            # a last step shorter than STEP
    data = os.urandom(size)
    for slow in (3600.0, -1.0):             # never slow; every step slow: 4 KiB pages after the first step
        monkeypatch.setattr(v, "SLOW_STEP", slow)
        m = HostMapping(size, huge=True)
        try:
            assert _resident(m.addr, size) == 0
            v.fault_in(m)
            assert _resident(m.addr, size) == size
            ctypes.memmove(m.addr, data, size)
            assert bytes(m.view) == data
        finally:
            m.close()

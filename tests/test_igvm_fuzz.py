"""Hypothesis over the IGVM reader and writer: random valid models round-trip; mutated files either parse
or raise IgvmError, never anything else, never hang, never allocate much beyond the file's size; files whose
headers claim huge sizes go through the whole launch path (read, plan, fill, check) in bounded memory."""

import resource
import subprocess
import sys
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from loaders.errors import IgvmError, LoadError
from loaders.igvm import (GuestPolicy, HeaderType, IgvmFile, PageData, Platform, RequiredMemory, SupportedPlatform,
                          read_igvm, write_igvm)
from loaders.igvm.model import ErrorRange, ParameterArea, ParameterInsert, ParameterUsage, VpContext
from loaders.igvm.vpcontext import build_native_context
from loaders.igvm.structs import BODY_LAYOUTS
from tests.igvm_samples import header_bodies, multi_platform, set_field, vector_b, with_area_initial_data

PLATFORMS = [Platform.NATIVE, Platform.VSM_ISOLATION, Platform.SEV_SNP, Platform.TDX, Platform.SEV, Platform.SEV_ES]
USAGES = [HeaderType.VP_COUNT_PARAMETER, HeaderType.MEMORY_MAP, HeaderType.COMMAND_LINE, HeaderType.MADT,
          HeaderType.SRAT, HeaderType.SLIT, HeaderType.PPTT, HeaderType.MMIO_RANGES, HeaderType.DEVICE_TREE,
          HeaderType.ENVIRONMENT_INFO_PARAMETER]
pages = st.integers(0, (1 << 40) - 1).map(lambda n: n * 4096)
# Sizes a header may claim: small, near the limits of RAM and of the address space, and anything at all.
HUGE = [1 << 32, 1 << 42, 0x7FFFF000, 0x80000000, 0xFFFFF000, (1 << 63), (1 << 64) - 4096, (1 << 64) - 1]
claimed_sizes = st.one_of(st.sampled_from(HUGE), st.integers(0, (1 << 52) - 1).map(lambda n: n * 4096),
                          st.integers(0, (1 << 64) - 1))


@st.composite
def models(draw):
    kinds = draw(st.lists(st.sampled_from(PLATFORMS), min_size=1, max_size=4, unique=True))
    plats = tuple(SupportedPlatform(1 << i, 0, k) for i, k in enumerate(kinds))
    full = (1 << len(plats)) - 1
    mask = st.integers(1, full)
    inits = tuple(GuestPolicy(draw(st.integers(0, (1 << 64) - 1)), draw(mask))
                  for _ in range(draw(st.integers(0, 2))))
    directives = []
    area = 0
    for _ in range(draw(st.integers(0, 12))):
        choice = draw(st.integers(0, 4))
        if choice == 0:
            data = draw(st.one_of(st.none(), st.binary(min_size=4096, max_size=4096),
                                  st.sampled_from([b"\x01" * 4096, b"\x02" * 4096])))
            directives.append(PageData(draw(pages), draw(mask), draw(st.sampled_from([0, 2, 4, 6])), draw(st.integers(0, 3)),
                                       data))
        elif choice == 1:
            if draw(st.booleans()):
                size = draw(st.integers(1, 3)) * 4096
                init = draw(st.one_of(st.none(), st.binary(min_size=size, max_size=size)))
            else:   # a claimed size far beyond the file: the model holds the number, never the bytes
                size = draw(st.sampled_from(HUGE[:-1]).map(lambda n: n & ~0xFFF))
                init = None
            directives.append(ParameterArea(size, area, init))
            for _ in range(draw(st.integers(0, 2))):
                directives.append(ParameterUsage(draw(st.sampled_from(USAGES)), area,
                                                 draw(st.integers(0, min(size, 1 << 32) - 1))))
            if draw(st.booleans()):
                directives.append(ParameterInsert(draw(pages), draw(mask), area))
            area += 1
        elif choice == 2:
            directives.append(RequiredMemory(draw(pages), draw(mask), draw(st.integers(0, 1000)) * 4096,
                                             draw(st.integers(0, 1))))
        elif choice == 3:
            directives.append(ErrorRange(draw(pages), draw(mask), draw(st.integers(1, 10)) * 4096))
        else:
            native = [p for p in plats if p.platform_type in (Platform.NATIVE, Platform.SEV)]
            if native:
                directives.append(VpContext(0, native[0].compatibility_mask, draw(st.integers(0, 3)),
                                            build_native_context(rip=draw(st.integers(0, (1 << 64) - 1)), rflags=2)))
    return IgvmFile(draw(st.sampled_from([1, 2])), plats, inits, tuple(directives))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_random_valid_models_round_trip(model):
    raw = write_igvm(model)
    back = read_igvm(raw)
    assert back == model
    assert write_igvm(back) == raw


SEEDS = [write_igvm(f()) for f in (vector_b, multi_platform, with_area_initial_data)]


def _parse(raw: bytes) -> None:
    try:
        read_igvm(raw)
    except IgvmError:
        pass


@settings(max_examples=300, deadline=2000)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_files_raise_only_igvm_error(seed, data):
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "set", "truncate", "extend"]))
        if op == "flip" and raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[data.draw(st.integers(0, len(raw))):]
        else:
            raw += data.draw(st.binary(max_size=64))
    _parse(bytes(raw))


@settings(max_examples=300, deadline=2000)
@given(st.sampled_from(SEEDS), st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_header_edits_with_a_fixed_checksum_raise_only_igvm_error(seed, offset, new):
    from tests.igvm_samples import patch
    vh_end = int.from_bytes(seed[8:12], "little") + int.from_bytes(seed[12:16], "little")
    offset = 24 + offset % max(1, vh_end - 24)
    _parse(patch(seed, offset, new[:max(0, vh_end - offset)]))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_igvm_error(raw):
    _parse(b"IGVM" + raw)


def test_reader_allocates_little_beyond_the_file():
    raw = write_igvm(multi_platform())
    tracemalloc.start()
    read_igvm(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < len(raw) + (1 << 20)


def _launch_path(raw: bytes, memory: int = 1 << 30) -> None:
    """Read, plan, fill and check as `pyvmm --igvm` does; LoadError is the only failure allowed."""
    from vmm.igvm_source import IgvmSpec, prepare_igvm
    from vmm.plan_text import plan_lines
    try:
        prepared = prepare_igvm(IgvmSpec("claimed.igvm"), memory, 2, raw=raw)
    except LoadError:
        return
    plan_lines(prepared)


def _bounded(raw: bytes, memory: int) -> int:
    """Peak traced allocation of the launch path for `raw`, in bytes."""
    tracemalloc.start()
    try:
        _launch_path(raw, memory)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


AREA_SEEDS = [s for s in SEEDS if any(t == HeaderType.PARAMETER_AREA for _, t in header_bodies(s))]
MEMORY = st.sampled_from([64 << 20, 1 << 30, 5 << 30])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(AREA_SEEDS), st.data(), claimed_sizes, MEMORY)
def test_grown_parameter_areas_are_refused_or_planned_in_bounded_memory(seed, data, size, memory):
    """A PARAMETER_AREA's number_of_bytes set to anything: the launch path plans or refuses it with LoadError,
    and allocates little beyond the file whatever the size claims (2^64-4096 once ended in OverflowError, 2^42
    in MemoryError, 0x7FFFF000 in a 2 GB bytearray)."""
    areas = [b for b, t in header_bodies(seed) if t == HeaderType.PARAMETER_AREA]
    raw = set_field(seed, data.draw(st.sampled_from(areas)), HeaderType.PARAMETER_AREA, "number_of_bytes", size)
    assert _bounded(raw, memory) < len(raw) + (4 << 20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data(), claimed_sizes, MEMORY)
def test_any_field_set_to_a_huge_value_is_refused_or_planned_in_bounded_memory(seed, data, value, memory):
    """Every field of every header (sizes, counts, offsets, GPAs) set to an edge value, checksum fixed."""
    body, typ = data.draw(st.sampled_from(header_bodies(seed)))
    name = data.draw(st.sampled_from(BODY_LAYOUTS[typ].fields))
    raw = set_field(seed, body, typ, name, value)
    assert _bounded(raw, memory) < len(raw) + (4 << 20)


def _claiming_file(size: int, gpa: int) -> bytes:
    """A NATIVE file whose one parameter area (a memory map) claims `size` bytes, inserted at `gpa`."""
    return write_igvm(IgvmFile(2, (SupportedPlatform(1, 0, Platform.NATIVE),), directives=(
        PageData(0x1000, 1, data=b"\xf4" * 4096), ParameterArea(size, 0),
        ParameterUsage(HeaderType.MEMORY_MAP, 0, 0), ParameterInsert(gpa, 1, 0),
        VpContext(0, 1, 0, build_native_context(rip=0x1000, rflags=2)))))


AS_LIMIT = 256 << 20     # address space for the child: far below any claimed size the test uses


def _limited_run(args: list[str]) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    return subprocess.run([sys.executable, "-m", "vmm", *args], capture_output=True, text=True, timeout=60,
                          preexec_fn=limit)


@pytest.mark.parametrize("size", [(1 << 64) - 4096, 1 << 42, 0x7FFFF000])
def test_cli_refuses_a_huge_parameter_area_in_one_line_and_bounded_memory(tmp_path, size):
    """`pyvmm --igvm FILE` with an area bigger than the guest: status 2, one line naming the area, and the
    process stays inside a 256 MiB address space (no allocation follows the claim)."""
    path = tmp_path / "huge-area.igvm"
    path.write_bytes(_claiming_file(size, 0x10000))
    p = _limited_run(["--igvm", str(path), "-m", "64M"])
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"pyvmm: error: {path}: parameter area 0"), p.stderr
    assert "is not inside guest RAM" in p.stderr, p.stderr


def test_cli_plans_a_huge_area_that_fits_without_allocating_it(tmp_path):
    """A 768 MiB area inside a 1 GiB guest is legal: `pyvmm igvm plan` prints it under a 256 MiB address space,
    with the hash of the written prefix and where the zeros start."""
    path = tmp_path / "big-area.igvm"
    path.write_bytes(_claiming_file(0x30000000, 0x10000000))
    p = _limited_run(["igvm", "plan", str(path), "-m", "1G"])
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    line = next(t for t in p.stdout.splitlines() if t.startswith("param "))
    assert line.startswith("param 0x0010000000-0x0040000000 0x30000000 sha256:") and "then zero from +0x1000" in line


def test_many_headers_naming_one_page_do_not_multiply_into_copies():
    """20,000 PAGE_DATA headers (a 650 KB file; the writer stores their one page once) over 80 MiB of guest:
    the planner keeps slices of the file instead of joining 80 MiB of copies, and the plan still says what
    every page holds."""
    from loaders.igvm.load import igvm_plan
    page = b"\x5a" * 4096
    n = 20000
    raw = write_igvm(IgvmFile(2, (SupportedPlatform(1, 0, Platform.NATIVE),), directives=tuple(
        PageData(0x100000 + i * 4096, 1, data=page) for i in range(n)) + (
        VpContext(0, 1, 0, build_native_context(rip=0x100000, rflags=2)),)))
    f = read_igvm(raw)
    tracemalloc.start()
    try:
        plan = igvm_plan(f, f.platforms[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(raw) + (16 << 20), peak
    assert sum(len(w.data) for w in plan.writes) == n * 4096
    assert [w.gpa for w in plan.writes][:3] == [0x100000, 0x101000, 0x102000]
    assert all(bytes(w.data) == page for w in plan.writes)


def test_many_relocation_regions_read_in_linear_time():
    """40,000 disjoint relocatable regions (a 2.2 MB file): each is checked against its neighbours, not against
    every earlier one (pairwise checks took over a minute for 80,000)."""
    import time

    from loaders.igvm import RelocatableRegion
    from loaders.igvm.vpcontext import VbsRegister, build_vbs_context
    n = 40000
    ctx = build_vbs_context([VbsRegister(0, "rip", (0x1000).to_bytes(16, "little"))])
    inits = tuple(RelocatableRegion(1, 0, 0, 0, 0x1000, 0x100000 + i * 0x2000, 0x1000, 0, 1 << 40)
                  for i in reversed(range(n)))      # descending: every insert lands at the front
    raw = write_igvm(IgvmFile(1, (SupportedPlatform(1, 2, Platform.VSM_ISOLATION),), inits,
                              (PageData(0x1000, 1, data=b"\xf4" * 4096), VpContext(0, 1, 0, ctx))))
    t = time.process_time()
    assert len(read_igvm(raw).initializations) == n
    assert time.process_time() - t < 15


def test_many_headers_naming_one_long_register_list_are_refused_without_parsing_it_again():
    """One 30,000-register VBS list (960 KB) named by 2,000 VP_CONTEXT headers: parsing it per header took
    about 0.13 s each (minutes in all); the second context for the same VTL is refused before it is parsed."""
    import time

    from loaders.igvm.vpcontext import VbsRegister, build_vbs_context
    ctx = build_vbs_context([VbsRegister(0, "rip", (0x1000).to_bytes(16, "little"))] * 30000)
    raw = write_igvm(IgvmFile(1, (SupportedPlatform(1, 0, Platform.VSM_ISOLATION),), (), (
        PageData(0x1000, 1, data=b"\xf4" * 4096), *(VpContext(0, 1, 0, ctx) for _ in range(2000)))))
    t = time.process_time()
    with pytest.raises(IgvmError, match=r"header #3 \(VP_CONTEXT\).*a second VBS VP context for VTL 0"):
        read_igvm(raw)
    assert time.process_time() - t < 5


def test_dump_hashes_a_blob_named_by_many_headers_once():
    """4,000 PARAMETER_AREA headers naming one 1 MiB initial-data blob (a 1.1 MB file): `pyvmm igvm dump`
    once hashed 4 GiB for it; now each blob is hashed once, and every area still shows its size and hash."""
    import hashlib
    import time

    from loaders.igvm.describe import describe
    blob = b"\x07" * (1 << 20)
    raw = write_igvm(IgvmFile(2, (SupportedPlatform(1, 0, Platform.NATIVE),), (),
                              tuple(ParameterArea(1 << 20, i, blob) for i in range(4000))))
    f = read_igvm(raw)
    t = time.process_time()
    info = describe(f, raw)
    assert time.process_time() - t < 1      # hashing 4 GiB takes several seconds; one MiB, milliseconds
    want = {"size": 1 << 20, "sha256": hashlib.sha256(blob).hexdigest()}
    assert [d["initial_data"] for d in info["directives"]] == [want] * 4000


def test_required_ram_under_the_firmware_alias_is_refused_before_a_vm_exists():
    """A page in the firmware window below 4 GiB gives the machine a window, and with it the ROM alias at
    0xE0000-0x100000 (QEMU's isa-bios) cut out of RAM; a file that also requires RAM across the alias used to be
    planned and then refused by Machine.load, after the VM was built (found by tests/bench/igvm_mutants.py)."""
    from loaders.igvm.pack import pack_flat_image
    from vmm.igvm_source import IgvmSpec, prepare_igvm

    def prepare(load_addr: int, required: tuple[int, int]):
        raw = pack_flat_image(b"\xf4" * 64, load_addr=load_addr, required_memory=(required,))
        return prepare_igvm(IgvmSpec("f.igvm"), 64 << 20, 1, raw=raw)
    with pytest.raises(LoadError, match=r"requires RAM at 0x0-0x400000"):
        prepare(0xFFFFF000, (0, 0x400000))
    with pytest.raises(LoadError, match=r"requires RAM at 0xe0000-0xe1000") as e:
        prepare(0xFFFFF000, (0xE0000, 0x1000))
    assert "-m" not in str(e.value)                                  # more memory would not help there
    assert prepare(0xFFFFF000, (0, 0xE0000)).firmware_window == 0x10000   # below the alias: fine
    assert prepare(0x100000, (0, 0x400000)).firmware_window == 0           # no window, no alias: RAM throughout

"""Hypothesis over the IGVM reader and writer: random valid models round-trip; mutated files either parse
or raise IgvmError, never anything else, never hang, never allocate much beyond the file's size."""

import tracemalloc

from hypothesis import HealthCheck, given, settings, strategies as st

from loaders.errors import IgvmError
from loaders.igvm import (GuestPolicy, HeaderType, IgvmFile, PageData, Platform, RequiredMemory, SupportedPlatform,
                          read_igvm, write_igvm)
from loaders.igvm.model import ErrorRange, ParameterArea, ParameterInsert, ParameterUsage, VpContext
from loaders.igvm.vpcontext import build_native_context
from tests.igvm_samples import multi_platform, vector_b, with_area_initial_data

PLATFORMS = [Platform.NATIVE, Platform.VSM_ISOLATION, Platform.SEV_SNP, Platform.TDX, Platform.SEV, Platform.SEV_ES]
USAGES = [HeaderType.VP_COUNT_PARAMETER, HeaderType.MEMORY_MAP, HeaderType.COMMAND_LINE, HeaderType.MADT,
          HeaderType.SRAT, HeaderType.SLIT, HeaderType.PPTT, HeaderType.MMIO_RANGES, HeaderType.DEVICE_TREE,
          HeaderType.ENVIRONMENT_INFO_PARAMETER]
pages = st.integers(0, (1 << 40) - 1).map(lambda n: n * 4096)


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
            size = draw(st.integers(1, 3)) * 4096
            init = draw(st.one_of(st.none(), st.binary(min_size=size, max_size=size)))
            directives.append(ParameterArea(size, area, init))
            for _ in range(draw(st.integers(0, 2))):
                directives.append(ParameterUsage(draw(st.sampled_from(USAGES)), area, draw(st.integers(0, size - 1))))
            if draw(st.booleans()):
                directives.append(ParameterInsert(draw(pages), draw(mask), area))
            area += 1
        elif choice == 2:
            directives.append(RequiredMemory(draw(pages), draw(mask), draw(st.integers(0, 1000)) * 4096,
                                             draw(st.integers(0, 1))))
        elif choice == 3:
            directives.append(ErrorRange(draw(pages), draw(mask), draw(st.integers(0, 10)) * 4096))
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

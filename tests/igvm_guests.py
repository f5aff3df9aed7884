"""Test guests packaged as IGVM files: the params guest (reads every parameter area) and the flat guests."""

from __future__ import annotations

from loaders.igvm import HeaderType as H, Platform
from loaders.igvm.pack import ParamSpec, pack_flat_image
from tests.guests.build import build

# Where the params guest expects each parameter area (passed to the compiler as -D defines).
PARAM_GPAS = {
    "VP_COUNT_GPA": (H.VP_COUNT_PARAMETER, 0x20000), "MEMORY_MAP_GPA": (H.MEMORY_MAP, 0x21000),
    "CMDLINE_GPA": (H.COMMAND_LINE, 0x22000), "MADT_GPA": (H.MADT, 0x23000), "SRAT_GPA": (H.SRAT, 0x24000),
    "SLIT_GPA": (H.SLIT, 0x25000), "PPTT_GPA": (H.PPTT, 0x26000), "ENV_GPA": (H.ENVIRONMENT_INFO_PARAMETER, 0x27000),
    "MMIO_GPA": (H.MMIO_RANGES, 0x28000),
}
PARAMS = tuple(ParamSpec(usage, gpa) for usage, gpa in PARAM_GPAS.values())


def params_image() -> bytes:
    return build("start64.S", extra_sources=("params.c",), defines={k: v[1] for k, v in PARAM_GPAS.items()})


def params_igvm(platform: Platform = Platform.NATIVE, version: int | None = None) -> bytes:
    """The params guest as an IGVM: NATIVE v2 by default, or VSM_ISOLATION (v1 by default)."""
    return pack_flat_image(params_image(), platform=platform, version=version, params=PARAMS)


def flat_igvm(name: str, platform: Platform = Platform.NATIVE, **kw) -> bytes:
    """A one-file assembly guest from tests/guests packaged as an IGVM."""
    return pack_flat_image(build(name), platform=platform, **kw)

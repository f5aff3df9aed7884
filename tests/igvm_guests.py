"""Test guests packaged as IGVM files: the params guest (reads every parameter area) and the flat guests."""

from __future__ import annotations

from loaders.igvm import HeaderType as H, IgvmBuilder, Platform, VpContext
from loaders.igvm.pack import (GDT_GPA, PAGE_TABLES_GPA, ParamSpec, native_context_for, pack_flat_image,
                               vbs_context_for)
from loaders.x86 import flat_gdt, identity_page_tables
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


def two_platform_igvm(native_image: bytes, vsm_image: bytes, load_addr: int = 0x100000) -> bytes:
    """NATIVE and VSM_ISOLATION in one file, each with its own image at the same address: what runs tells which
    platform was launched."""
    b = IgvmBuilder(version=2)
    native, vsm = b.platform(Platform.NATIVE), b.platform(Platform.VSM_ISOLATION)
    b.pages(GDT_GPA, flat_gdt()[0], native | vsm)
    b.pages(PAGE_TABLES_GPA, identity_page_tables(PAGE_TABLES_GPA), native | vsm)
    b.pages(load_addr, native_image, native)
    b.pages(load_addr, vsm_image, vsm)
    b.add(VpContext(0, native, 0, native_context_for(load_addr)))
    b.add(VpContext(0, vsm, 0, vbs_context_for(load_addr)))
    return b.build()

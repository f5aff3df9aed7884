"""The parsed IGVM file: one frozen record (loaders.record) per header kind; data fields are memoryviews into the file.

Each class becomes a (frozen, slotted) record on its first use, through the module's __getattr__ (PEP 562):
a launch reads only the few header kinds its file holds.

Equality compares contents (a memoryview equals bytes with the same contents), which is what the
writer's round-trip property `read(write(f)) == f` needs: file offsets are the writer's business
and are not part of the model.
"""

from __future__ import annotations

import threading
from functools import reduce
from operator import or_
from ..record import field, record

from .constants import Architecture, HeaderType, Platform

Data = bytes | bytearray | memoryview


# --- platform and initialization ----------------------------------------------------------
class SupportedPlatform:
    compatibility_mask: int
    highest_vtl: int
    platform_type: Platform
    platform_version: int = 1
    shared_gpa_boundary: int = 0
    kind = HeaderType.SUPPORTED_PLATFORM


class GuestPolicy:
    policy: int
    compatibility_mask: int
    kind = HeaderType.GUEST_POLICY


class RelocatableRegion:
    compatibility_mask: int
    vp_index: int
    vtl: int
    flags: int
    relocation_alignment: int
    relocation_region_gpa: int
    relocation_region_size: int
    minimum_relocation_gpa: int
    maximum_relocation_gpa: int
    kind = HeaderType.RELOCATABLE_REGION


class PageTableRelocation:
    compatibility_mask: int
    vp_index: int
    vtl: int
    gpa: int
    size: int
    used_size: int
    kind = HeaderType.PAGE_TABLE_RELOCATION_REGION


class CorimDocument:
    compatibility_mask: int
    data: Data
    kind = HeaderType.CORIM_DOCUMENT


class CorimSignature:
    compatibility_mask: int
    data: Data
    kind = HeaderType.CORIM_SIGNATURE


class CcaPolicy:
    compatibility_mask: int
    attributes_required_zeroes: int
    attributes_required_ones: int
    hash_algorithm: int
    lfa_policy: int
    kind = HeaderType.CCA_POLICY


# --- directives ---------------------------------------------------------------------------
class ParameterArea:
    number_of_bytes: int
    parameter_area_index: int
    initial_data: Data | None = None      # None: the area starts as zeroes
    kind = HeaderType.PARAMETER_AREA


class PageData:
    gpa: int
    compatibility_mask: int
    flags: int = 0
    data_type: int = 0
    data: Data | None = None              # None: a page of zeroes (file_offset 0)
    # Where the data sits in the file it was read from: lets a loader copy runs of pages as one slice.
    file_offset: int = field(default=0, compare=False, repr=False)
    kind = HeaderType.PAGE_DATA


class ParameterInsert:
    gpa: int
    compatibility_mask: int
    parameter_area_index: int
    kind = HeaderType.PARAMETER_INSERT


class ParameterUsage:
    """Any of the host-parameter directives (VP count, memory map, command line, MADT, SRAT, ...)."""
    kind: HeaderType
    parameter_area_index: int
    byte_offset: int


class VpContext:
    gpa: int
    compatibility_mask: int
    vp_index: int
    data: Data                            # native context page, VMSA page, or VBS register list
    kind = HeaderType.VP_CONTEXT


class RequiredMemory:
    gpa: int
    compatibility_mask: int
    number_of_bytes: int
    flags: int = 0
    kind = HeaderType.REQUIRED_MEMORY


class ErrorRange:
    gpa: int
    compatibility_mask: int
    size_bytes: int
    kind = HeaderType.ERROR_RANGE


class SnpIdBlock:
    compatibility_mask: int
    author_key_enabled: int
    ld: bytes
    family_id: bytes
    image_id: bytes
    version: int
    guest_svn: int
    id_key_algorithm: int
    author_key_algorithm: int
    id_key_signature: bytes
    id_public_key: bytes
    author_key_signature: bytes
    author_public_key: bytes
    kind = HeaderType.SNP_ID_BLOCK


class VbsMeasurement:
    compatibility_mask: int
    version: int
    product_id: int
    module_id: int
    security_version: int
    policy_flags: int
    boot_digest_algo: int
    signing_algo: int
    boot_measurement_digest: bytes
    signature: bytes
    public_key: bytes
    kind = HeaderType.VBS_MEASUREMENT


class IgvmFile:
    """An IGVM file as read (or to be written): header sections in file order."""
    version: int
    platforms: tuple[SupportedPlatform, ...]
    initializations: tuple[Initialization, ...] = ()
    directives: tuple[Directive, ...] = ()
    architecture: Architecture = Architecture.X64
    page_size: int = 4096
    header_offsets: tuple[int, ...] = field(default=(), compare=False, repr=False)  # file offset of each header

    def platform(self, platform_type: Platform) -> SupportedPlatform | None:
        for p in self.platforms:
            if p.platform_type == platform_type:
                return p
        return None

    def platform_types(self) -> list[Platform]:
        return [p.platform_type for p in self.platforms]

    def for_platform(self, platform_type: Platform) -> list[Directive]:
        """The directives that apply to one platform, in file order (unmasked ones always apply)."""
        p = self.platform(platform_type)
        if p is None:
            raise KeyError(f"the file declares no {platform_type.name} platform")
        bit = p.compatibility_mask
        return [d for d in self.directives if getattr(d, "compatibility_mask", bit) & bit]

    def initializations_for(self, platform_type: Platform) -> list[Initialization]:
        p = self.platform(platform_type)
        if p is None:
            raise KeyError(f"the file declares no {platform_type.name} platform")
        return [h for h in self.initializations if h.compatibility_mask & p.compatibility_mask]


# The class names of Initialization and Directive (for is_a).
INITIALIZATIONS = ("GuestPolicy", "RelocatableRegion", "PageTableRelocation", "CorimDocument", "CorimSignature",
                    "CcaPolicy")
DIRECTIVES = ("ParameterArea", "PageData", "ParameterInsert", "ParameterUsage", "VpContext", "RequiredMemory",
               "ErrorRange", "SnpIdBlock", "VbsMeasurement")
# The plain classes above, taken out of the module namespace until __getattr__ makes each a record.
_PENDING = {name: globals().pop(name) for name in ("SupportedPlatform", *INITIALIZATIONS, *DIRECTIVES, "IgvmFile")}
_UNIONS = {"Initialization": INITIALIZATIONS, "Directive": DIRECTIVES}
_lock = threading.RLock()


def __getattr__(name: str):
    with _lock:
        if name in globals():            # another thread made it while this one waited
            return globals()[name]
        if name in _PENDING:
            value = record(frozen=True, slots=True)(_PENDING.pop(name))
        elif name in _UNIONS:
            value = reduce(or_, (__getattr__(n) for n in _UNIONS[name]))
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value


def page_data_maker():
    """A function that makes PageData(gpa, compatibility_mask, flags, data_type, data, file_offset) the way the
    reader's hot loop needs it: the same object, its slots filled directly. The frozen __init__ calls
    object.__setattr__ once per field, which is a third of the time to read a file of 4 KiB pages."""
    cls = __getattr__("PageData")
    s_gpa, s_mask, s_flags, s_type, s_data, s_off = (cls.__dict__[n].__set__ for n in (
        "gpa", "compatibility_mask", "flags", "data_type", "data", "file_offset"))
    new = object.__new__

    def make(gpa: int, mask: int, flags: int, data_type: int, data: Data | None, file_offset: int):
        d = new(cls)
        s_gpa(d, gpa)
        s_mask(d, mask)
        s_flags(d, flags)
        s_type(d, data_type)
        s_data(d, data)
        s_off(d, file_offset)
        return d
    return make


class _Unmade:
    """Stands in for a model class nobody has used yet: nothing is an instance of it."""


def made(name: str) -> type:
    """The model class `name` for an isinstance check, without making it: _Unmade while no code has used it
    (then no instance of it can exist)."""
    return globals().get(name, _Unmade)


def is_a(obj: object, *names: str) -> bool:
    """isinstance(obj, (model classes named)) without making the classes not yet in use."""
    return isinstance(obj, tuple(map(made, names)))


def __dir__() -> list[str]:
    return sorted({*globals(), *_PENDING, *_UNIONS})

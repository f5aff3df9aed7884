"""The parsed IGVM file: one frozen dataclass per header kind; data fields are memoryviews into the file.

Equality compares contents (a memoryview equals bytes with the same contents), which is what the
writer's round-trip property `read(write(f)) == f` needs: file offsets are the writer's business
and are not part of the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .constants import Architecture, HeaderType, Platform

Data = Union[bytes, bytearray, memoryview]


# --- platform and initialization ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SupportedPlatform:
    compatibility_mask: int
    highest_vtl: int
    platform_type: Platform
    platform_version: int = 1
    shared_gpa_boundary: int = 0
    kind = HeaderType.SUPPORTED_PLATFORM


@dataclass(frozen=True, slots=True)
class GuestPolicy:
    policy: int
    compatibility_mask: int
    kind = HeaderType.GUEST_POLICY


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class PageTableRelocation:
    compatibility_mask: int
    vp_index: int
    vtl: int
    gpa: int
    size: int
    used_size: int
    kind = HeaderType.PAGE_TABLE_RELOCATION_REGION


@dataclass(frozen=True, slots=True)
class CorimDocument:
    compatibility_mask: int
    data: Data
    kind = HeaderType.CORIM_DOCUMENT


@dataclass(frozen=True, slots=True)
class CorimSignature:
    compatibility_mask: int
    data: Data
    kind = HeaderType.CORIM_SIGNATURE


@dataclass(frozen=True, slots=True)
class CcaPolicy:
    compatibility_mask: int
    attributes_required_zeroes: int
    attributes_required_ones: int
    hash_algorithm: int
    lfa_policy: int
    kind = HeaderType.CCA_POLICY


# --- directives ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ParameterArea:
    number_of_bytes: int
    parameter_area_index: int
    initial_data: Data | None = None      # None: the area starts as zeroes
    kind = HeaderType.PARAMETER_AREA


@dataclass(frozen=True, slots=True)
class PageData:
    gpa: int
    compatibility_mask: int
    flags: int = 0
    data_type: int = 0
    data: Data | None = None              # None: a page of zeroes (file_offset 0)
    # Where the data sits in the file it was read from: lets a loader copy runs of pages as one slice.
    file_offset: int = field(default=0, compare=False, repr=False)
    kind = HeaderType.PAGE_DATA


@dataclass(frozen=True, slots=True)
class ParameterInsert:
    gpa: int
    compatibility_mask: int
    parameter_area_index: int
    kind = HeaderType.PARAMETER_INSERT


@dataclass(frozen=True, slots=True)
class ParameterUsage:
    """Any of the host-parameter directives (VP count, memory map, command line, MADT, SRAT, ...)."""
    kind: HeaderType
    parameter_area_index: int
    byte_offset: int


@dataclass(frozen=True, slots=True)
class VpContext:
    gpa: int
    compatibility_mask: int
    vp_index: int
    data: Data                            # native context page, VMSA page, or VBS register list
    kind = HeaderType.VP_CONTEXT


@dataclass(frozen=True, slots=True)
class RequiredMemory:
    gpa: int
    compatibility_mask: int
    number_of_bytes: int
    flags: int = 0
    kind = HeaderType.REQUIRED_MEMORY


@dataclass(frozen=True, slots=True)
class ErrorRange:
    gpa: int
    compatibility_mask: int
    size_bytes: int
    kind = HeaderType.ERROR_RANGE


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


Initialization = Union[GuestPolicy, RelocatableRegion, PageTableRelocation, CorimDocument, CorimSignature, CcaPolicy]
Directive = Union[ParameterArea, PageData, ParameterInsert, ParameterUsage, VpContext, RequiredMemory, ErrorRange,
                  SnpIdBlock, VbsMeasurement]


@dataclass(frozen=True, slots=True)
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

"""IGVM constants from the format definition (igvm_defs), named (loaders.named) so dumps and errors can name them."""

from ..named import Named

MAGIC = 0x4D564749            # b"IGVM" little-endian
# (Structure sizes come from their one declaration in structs.py.)
PAGE_SIZE = 4096
PAGE_SIZE_2M = 2 << 20
OPTIONAL_BIT = 1 << 31


class Architecture(Named):
    X64 = 0
    AARCH64 = 1


class Platform(Named):
    NATIVE = 0x00
    VSM_ISOLATION = 0x01
    SEV_SNP = 0x02
    TDX = 0x03
    SEV = 0x04
    SEV_ES = 0x05
    CCA = 0x06


PLATFORM_ARCHES = {
    Platform.NATIVE: {Architecture.X64}, Platform.VSM_ISOLATION: {Architecture.X64, Architecture.AARCH64},
    Platform.SEV_SNP: {Architecture.X64}, Platform.TDX: {Architecture.X64}, Platform.SEV: {Architecture.X64},
    Platform.SEV_ES: {Architecture.X64}, Platform.CCA: {Architecture.AARCH64},
}


class HeaderType(Named):
    SUPPORTED_PLATFORM = 0x001
    GUEST_POLICY = 0x101
    RELOCATABLE_REGION = 0x102
    PAGE_TABLE_RELOCATION_REGION = 0x103
    CORIM_DOCUMENT = 0x104
    CORIM_SIGNATURE = 0x105
    CCA_POLICY = 0x106
    PARAMETER_AREA = 0x301
    PAGE_DATA = 0x302
    PARAMETER_INSERT = 0x303
    VP_CONTEXT = 0x304
    REQUIRED_MEMORY = 0x305
    VP_COUNT_PARAMETER = 0x307
    SRAT = 0x308
    MADT = 0x309
    MMIO_RANGES = 0x30A
    SNP_ID_BLOCK = 0x30B
    MEMORY_MAP = 0x30C
    ERROR_RANGE = 0x30D
    COMMAND_LINE = 0x30E
    SLIT = 0x30F
    PPTT = 0x310
    VBS_MEASUREMENT = 0x311
    DEVICE_TREE = 0x312
    ENVIRONMENT_INFO_PARAMETER = 0x313


RESERVED_DO_NOT_USE = 0x306
RANGE_PLATFORM = range(0x001, 0x101)
RANGE_INIT = range(0x101, 0x201)
RANGE_DIRECTIVE = range(0x301, 0x401)

PARAMETER_USAGE_TYPES = frozenset({
    HeaderType.VP_COUNT_PARAMETER, HeaderType.SRAT, HeaderType.MADT, HeaderType.MMIO_RANGES,
    HeaderType.MEMORY_MAP, HeaderType.COMMAND_LINE, HeaderType.SLIT, HeaderType.PPTT, HeaderType.DEVICE_TREE,
    HeaderType.ENVIRONMENT_INFO_PARAMETER})


class PageDataFlags(Named):
    IS_2MB_PAGE = 1 << 0
    UNMEASURED = 1 << 1
    SHARED = 1 << 2


class PageDataType(Named):
    NORMAL = 0
    SECRETS = 1
    CPUID_DATA = 2
    CPUID_XF = 3


class MemoryMapEntryType(Named):
    MEMORY = 0
    PLATFORM_RESERVED = 1
    PERSISTENT = 2
    VTL2_PROTECTABLE = 3
    SPECIFIC_PURPOSE = 4
    HIDDEN = 5


class RelocationFlags(Named):
    IS_VTL2 = 0x1
    APPLY_RIP = 0x2
    APPLY_GDTR = 0x4


class RequiredMemoryFlags(Named):
    VTL2_PROTECTABLE = 0x1


class EnvironmentInfo(Named):
    MEMORY_IS_SHARED = 0x1

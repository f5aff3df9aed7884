"""Every IGVM structure declared once: a name, a struct format and field names; sizes are checked in tests."""

from __future__ import annotations

import struct
from collections import namedtuple

from ..record import record
from .constants import HeaderType


@record(frozen=True)
class Layout:
    """A little-endian packed C structure: unpack to a tuple of fields (or to a record read by field name),
    pack from one (or from field names)."""
    name: str
    fmt: str
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        s = struct.Struct(self.fmt)
        object.__setattr__(self, "_s", s)
        object.__setattr__(self, "_fieldset", frozenset(self.fields))
        if len(self.fields) != len(s.unpack(bytes(s.size))):
            raise AssertionError(f"{self.name}: field names do not match the format")

    @property
    def record(self) -> type:
        """A namedtuple of the fields, made on first use (a launch reads few kinds of header)."""
        rec = self.__dict__.get("_record")
        if rec is None:
            rec = namedtuple(self.name, self.fields)
            object.__setattr__(self, "_record", rec)
            object.__setattr__(self, "_make", rec._make)
        return rec

    def read(self, buf, offset: int = 0):
        """The structure at `offset` as a record whose fields are read by name (f.gpa, f.compatibility_mask)."""
        try:
            make = self._make  # type: ignore[attr-defined]
        except AttributeError:
            make = self.record._make
        return make(self._s.unpack_from(buf, offset))  # type: ignore[attr-defined]

    def span(self, name: str) -> tuple[int, int]:
        """(offset, width) of one field inside the structure, from the format: what a byte-level edit needs."""
        spans = self.__dict__.get("_spans")
        if spans is None:
            import re                   # only for a byte-level edit (tests, the writer): not on a launch
            spans, pos, fields = {}, 0, iter(self.fields)
            for count, code in re.findall(r"(\d*)([a-zA-Z?])", self.fmt[1:]):
                n = int(count or 1)
                width = struct.calcsize("<" + code)
                if code == "x":
                    pos += n
                elif code == "s":
                    spans[next(fields)] = (pos, n)
                    pos += n
                else:
                    for _ in range(n):
                        spans[next(fields)] = (pos, width)
                        pos += width
            object.__setattr__(self, "_spans", spans)
        return spans[name]

    def pack_fields(self, **values) -> bytes:
        """The structure from named fields; every field must be named (a forgotten one is a bug, not a zero)."""
        if values.keys() != self._fieldset:  # type: ignore[attr-defined]
            missing, unknown = sorted(set(self.fields) - values.keys()), sorted(values.keys() - set(self.fields))
            raise TypeError(f"{self.name}: missing fields {missing}, unknown fields {unknown}")
        return self._s.pack(*(values[n] for n in self.fields))  # type: ignore[attr-defined]

    @property
    def size(self) -> int:
        return self._s.size  # type: ignore[attr-defined]

    @property
    def unpack_from(self):
        return self._s.unpack_from  # type: ignore[attr-defined]

    @property
    def pack(self):
        return self._s.pack  # type: ignore[attr-defined]


FIXED_HEADER_V1 = Layout("IGVM_FIXED_HEADER", "<6I", (
    "magic", "format_version", "variable_header_offset", "variable_header_size", "total_file_size", "checksum"))
FIXED_HEADER_V2 = Layout("IGVM_FIXED_HEADER_V2", "<8I", FIXED_HEADER_V1.fields + ("architecture", "page_size"))
VARIABLE_HEADER = Layout("IGVM_VHS_VARIABLE_HEADER", "<II", ("typ", "length"))

SUPPORTED_PLATFORM = Layout("IGVM_VHS_SUPPORTED_PLATFORM", "<IBBHQ", (
    "compatibility_mask", "highest_vtl", "platform_type", "platform_version", "shared_gpa_boundary"))
GUEST_POLICY = Layout("IGVM_VHS_GUEST_POLICY", "<QII", ("policy", "compatibility_mask", "reserved"))
RELOCATABLE_REGION = Layout("IGVM_VHS_RELOCATABLE_REGION", "<IHBBQQQQQ", (
    "compatibility_mask", "vp_index", "vtl", "flags", "relocation_alignment", "relocation_region_gpa",
    "relocation_region_size", "minimum_relocation_gpa", "maximum_relocation_gpa"))
PAGE_TABLE_RELOCATION = Layout("IGVM_VHS_PAGE_TABLE_RELOCATION", "<IHBBQQQ", (
    "compatibility_mask", "vp_index", "vtl", "reserved", "gpa", "size", "used_size"))
CORIM_DATA = Layout("IGVM_VHS_CORIM_DATA", "<IIII", ("compatibility_mask", "file_offset", "size_bytes", "reserved"))
CCA_POLICY = Layout("IGVM_VHS_CCA_POLICY", "<IIQQBB6s", (
    "compatibility_mask", "reserved", "attributes_required_zeroes", "attributes_required_ones",
    "hash_algorithm", "lfa_policy", "reserved2"))
PARAMETER_AREA = Layout("IGVM_VHS_PARAMETER_AREA", "<QII", ("number_of_bytes", "parameter_area_index", "file_offset"))
PAGE_DATA = Layout("IGVM_VHS_PAGE_DATA", "<QIIIHH", (
    "gpa", "compatibility_mask", "file_offset", "flags", "data_type", "reserved"))
PARAMETER_INSERT = Layout("IGVM_VHS_PARAMETER_INSERT", "<QII", ("gpa", "compatibility_mask", "parameter_area_index"))
VP_CONTEXT = Layout("IGVM_VHS_VP_CONTEXT", "<QIIHH", ("gpa", "compatibility_mask", "file_offset", "vp_index", "reserved"))
REQUIRED_MEMORY = Layout("IGVM_VHS_REQUIRED_MEMORY", "<QIIII", (
    "gpa", "compatibility_mask", "number_of_bytes", "flags", "reserved"))
PARAMETER = Layout("IGVM_VHS_PARAMETER", "<II", ("parameter_area_index", "byte_offset"))
ERROR_RANGE = Layout("IGVM_VHS_ERROR_RANGE", "<QII", ("gpa", "compatibility_mask", "size_bytes"))
SNP_ID_BLOCK = Layout("IGVM_VHS_SNP_ID_BLOCK", "<IB3s48s16s16sIIII144s152s144s152s", (
    "compatibility_mask", "author_key_enabled", "reserved", "ld", "family_id", "image_id", "version", "guest_svn",
    "id_key_algorithm", "author_key_algorithm", "id_key_signature", "id_public_key", "author_key_signature",
    "author_public_key"))
VBS_MEASUREMENT = Layout("IGVM_VHS_VBS_MEASUREMENT", "<8I64s256s512s", (
    "compatibility_mask", "version", "product_id", "module_id", "security_version", "policy_flags",
    "boot_digest_algo", "signing_algo", "boot_measurement_digest", "signature", "public_key"))
MEMORY_MAP_ENTRY = Layout("IGVM_VHS_MEMORY_MAP_ENTRY", "<QQHHI", (
    "starting_gpa_page_number", "number_of_pages", "entry_type", "flags", "reserved"))
MEMORY_RANGE = Layout("IGVM_VHS_MEMORY_RANGE", "<QQ", ("starting_gpa_page_number", "number_of_pages"))
MMIO_RANGES = Layout("IGVM_VHS_MMIO_RANGES", "<4Q", ("start0", "pages0", "start1", "pages1"))
NATIVE_VP_CONTEXT_X64 = Layout("IgvmNativeVpContextX64", "<19QH4xHQHHIIHHIIQQQQQ", (
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rip", "rflags", "idtr_base", "idtr_limit", "gdtr_limit", "gdtr_base", "code_selector", "code_attributes",
    "code_base", "code_limit", "data_selector", "data_attributes", "data_base", "data_limit", "gs_base", "cr0",
    "cr3", "cr4", "efer"))
VBS_CONTEXT_HEADER = Layout("VbsVpContextHeader", "<I", ("register_count",))
VBS_REGISTER = Layout("VbsVpContextRegister", "<BI11s16s", ("vtl", "register_name", "mbz", "register_value"))

# Host parameter values (the usages' formats in igvm_defs): a u32 VP count and the IgvmEnvironmentInfo bits.
VP_COUNT = Layout("IgvmVpCount", "<I", ("vp_count",))
ENVIRONMENT_INFO = Layout("IgvmEnvironmentInfo", "<I", ("memory_is_shared",))
# The 16-byte HV_REGISTER_VALUE forms a VBS register list uses for segments and descriptor tables
# (igvm crate hv_defs.rs: HvX64SegmentRegister, HvX64TableRegister).
HV_SEGMENT = Layout("HvX64SegmentRegister", "<QIHH", ("base", "limit", "selector", "attributes"))
HV_TABLE = Layout("HvX64TableRegister", "<6sHQ", ("pad", "limit", "base"))
# Where the fixed header's checksum sits: the CRC-32 covers the fixed header with this field zeroed.
CHECKSUM_OFFSET = FIXED_HEADER_V1.fields.index("checksum") * 4



# The body layout of each header type (parameter usages share IGVM_VHS_PARAMETER).
BODY_LAYOUTS: dict[int, Layout] = {
    HeaderType.SUPPORTED_PLATFORM: SUPPORTED_PLATFORM, HeaderType.GUEST_POLICY: GUEST_POLICY,
    HeaderType.RELOCATABLE_REGION: RELOCATABLE_REGION, HeaderType.PAGE_TABLE_RELOCATION_REGION: PAGE_TABLE_RELOCATION,
    HeaderType.CORIM_DOCUMENT: CORIM_DATA, HeaderType.CORIM_SIGNATURE: CORIM_DATA, HeaderType.CCA_POLICY: CCA_POLICY,
    HeaderType.PARAMETER_AREA: PARAMETER_AREA, HeaderType.PAGE_DATA: PAGE_DATA,
    HeaderType.PARAMETER_INSERT: PARAMETER_INSERT, HeaderType.VP_CONTEXT: VP_CONTEXT,
    HeaderType.REQUIRED_MEMORY: REQUIRED_MEMORY, HeaderType.SNP_ID_BLOCK: SNP_ID_BLOCK,
    HeaderType.ERROR_RANGE: ERROR_RANGE, HeaderType.VBS_MEASUREMENT: VBS_MEASUREMENT,
}
for _t in (HeaderType.VP_COUNT_PARAMETER, HeaderType.SRAT, HeaderType.MADT, HeaderType.MMIO_RANGES,
           HeaderType.MEMORY_MAP, HeaderType.COMMAND_LINE, HeaderType.SLIT, HeaderType.PPTT, HeaderType.DEVICE_TREE,
           HeaderType.ENVIRONMENT_INFO_PARAMETER):
    BODY_LAYOUTS[_t] = PARAMETER

"""The IGVM writer: IgvmFile -> bytes, deterministic, with identical data blobs stored once.

Layout: fixed header, variable headers right after it, then the file data in order of first
reference, each page-data blob padded to its page size. A file with no data at all gets 8 zero
bytes of data, because the igvm crate rejects an empty data section.
"""

from __future__ import annotations

import zlib

from ..errors import IgvmError
from . import model as m
from .constants import MAGIC, PAGE_SIZE, PAGE_SIZE_2M, HeaderType, PageDataFlags
from .structs import BODY_LAYOUTS, CHECKSUM_OFFSET, FIXED_HEADER_V1, FIXED_HEADER_V2, VARIABLE_HEADER


class _Data:
    """The data section under construction: blob -> absolute offset, de-duplicated by content."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.offsets: dict[bytes, int] = {}
        self.size = 0
        self.start = 0

    def add(self, blob, pad_to: int = 0) -> int:
        b = bytes(blob)
        if pad_to and len(b) < pad_to:
            b += bytes(pad_to - len(b))
        off = self.offsets.get(b)
        if off is None:
            off = self.offsets[b] = self.start + self.size
            self.chunks.append(b)
            self.size += len(b)
        return off


def _body(h, data: _Data) -> tuple[int, bytes]:
    """(header type, body bytes) of one header, packed by field name; file offsets come from the data section."""
    k = h.kind
    layout = BODY_LAYOUTS[k]
    if k == HeaderType.SUPPORTED_PLATFORM:
        return k, layout.pack_fields(compatibility_mask=h.compatibility_mask, highest_vtl=h.highest_vtl,
                                     platform_type=int(h.platform_type), platform_version=h.platform_version,
                                     shared_gpa_boundary=h.shared_gpa_boundary)
    if k == HeaderType.GUEST_POLICY:
        return k, layout.pack_fields(policy=h.policy, compatibility_mask=h.compatibility_mask, reserved=0)
    if k == HeaderType.RELOCATABLE_REGION:
        return k, layout.pack_fields(**{n: getattr(h, n) for n in layout.fields})
    if k == HeaderType.PAGE_TABLE_RELOCATION_REGION:
        return k, layout.pack_fields(compatibility_mask=h.compatibility_mask, vp_index=h.vp_index, vtl=h.vtl,
                                     reserved=0, gpa=h.gpa, size=h.size, used_size=h.used_size)
    if k in (HeaderType.CORIM_DOCUMENT, HeaderType.CORIM_SIGNATURE):
        return k, layout.pack_fields(compatibility_mask=h.compatibility_mask, file_offset=data.add(h.data),
                                     size_bytes=len(h.data), reserved=0)
    if k == HeaderType.CCA_POLICY:
        return k, layout.pack_fields(compatibility_mask=h.compatibility_mask, reserved=0,
                                     attributes_required_zeroes=h.attributes_required_zeroes,
                                     attributes_required_ones=h.attributes_required_ones,
                                     hash_algorithm=h.hash_algorithm, lfa_policy=h.lfa_policy, reserved2=bytes(6))
    if k == HeaderType.PARAMETER_AREA:
        off = data.add(h.initial_data, h.number_of_bytes) if h.initial_data is not None else 0
        return k, layout.pack_fields(number_of_bytes=h.number_of_bytes, parameter_area_index=h.parameter_area_index,
                                     file_offset=off)
    if k == HeaderType.PAGE_DATA:
        size = PAGE_SIZE_2M if h.flags & PageDataFlags.IS_2MB_PAGE else PAGE_SIZE
        if h.data is not None and len(h.data) > size:
            raise IgvmError(f"page data at GPA {h.gpa:#x} is {len(h.data):#x} bytes, more than a {size:#x} page")
        off = data.add(h.data, size) if h.data is not None else 0
        return k, layout.pack_fields(gpa=h.gpa, compatibility_mask=h.compatibility_mask, file_offset=off,
                                     flags=h.flags, data_type=h.data_type, reserved=0)
    if k == HeaderType.PARAMETER_INSERT:
        return k, layout.pack_fields(gpa=h.gpa, compatibility_mask=h.compatibility_mask,
                                     parameter_area_index=h.parameter_area_index)
    if k == HeaderType.VP_CONTEXT:
        return k, layout.pack_fields(gpa=h.gpa, compatibility_mask=h.compatibility_mask,
                                     file_offset=data.add(h.data), vp_index=h.vp_index, reserved=0)
    if k == HeaderType.REQUIRED_MEMORY:
        return k, layout.pack_fields(gpa=h.gpa, compatibility_mask=h.compatibility_mask,
                                     number_of_bytes=h.number_of_bytes, flags=h.flags, reserved=0)
    if k == HeaderType.ERROR_RANGE:
        return k, layout.pack_fields(gpa=h.gpa, compatibility_mask=h.compatibility_mask, size_bytes=h.size_bytes)
    if k == HeaderType.SNP_ID_BLOCK:
        return k, layout.pack_fields(reserved=bytes(3), **{n: getattr(h, n) for n in layout.fields if n != "reserved"})
    if k == HeaderType.VBS_MEASUREMENT:
        return k, layout.pack_fields(**{n: getattr(h, n) for n in layout.fields})
    if m.is_a(h, "ParameterUsage"):
        return k, layout.pack_fields(parameter_area_index=h.parameter_area_index, byte_offset=h.byte_offset)
    raise IgvmError(f"cannot write header {h!r}")


def write_igvm(f: m.IgvmFile) -> bytes:
    """Serialize a model; the result reads back equal to it (if the model is valid)."""
    fixed = FIXED_HEADER_V2.size if f.version == 2 else FIXED_HEADER_V1.size
    headers = [*f.platforms, *f.initializations, *f.directives]
    # Two passes: header sizes do not depend on offsets, so lay the headers out first.
    vh_size = 0
    for h in headers:
        length = BODY_LAYOUTS[h.kind].size
        vh_size += 8 + ((length + 7) & ~7)
    data = _Data()
    data.start = fixed + vh_size
    parts = []
    for h in headers:
        typ, body = _body(h, data)
        parts.append(VARIABLE_HEADER.pack_fields(typ=typ, length=len(body)) + body + bytes(-len(body) % 8))
    var = b"".join(parts)
    if data.size == 0:
        data.add(bytes(8))
    total = fixed + len(var) + data.size
    if total >= 1 << 32:
        raise IgvmError(f"the file would be {total:#x} bytes; IGVM files must be under 4 GiB")
    if f.version == 2:
        head = FIXED_HEADER_V2.pack_fields(magic=MAGIC, format_version=2, variable_header_offset=fixed,
                                           variable_header_size=len(var), total_file_size=total, checksum=0,
                                           architecture=int(f.architecture), page_size=f.page_size)
    else:
        head = FIXED_HEADER_V1.pack_fields(magic=MAGIC, format_version=1, variable_header_offset=fixed,
                                           variable_header_size=len(var), total_file_size=total, checksum=0)
    crc = zlib.crc32(var, zlib.crc32(head)) & 0xFFFFFFFF
    head = head[:CHECKSUM_OFFSET] + crc.to_bytes(4, "little") + head[CHECKSUM_OFFSET + 4:]
    return b"".join([head, var, *data.chunks])

"""The IGVM writer: IgvmFile -> bytes, deterministic, with identical data blobs stored once.

Layout: fixed header, variable headers right after it, then the file data in order of first
reference, each page-data blob padded to its page size. A file with no data at all gets 8 zero
bytes of data, because the igvm crate rejects an empty data section.
"""

from __future__ import annotations

import zlib

from ..errors import IgvmError
from . import model as m
from .constants import (MAGIC, PAGE_SIZE, PAGE_SIZE_2M, HeaderType,
                        PageDataFlags)
from .structs import (BODY_LAYOUTS, CCA_POLICY, CHECKSUM_OFFSET, CORIM_DATA, FIXED_HEADER_V1, FIXED_HEADER_V2, GUEST_POLICY,
                      PAGE_TABLE_RELOCATION, PARAMETER, RELOCATABLE_REGION, VARIABLE_HEADER)


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
    """(header type, body bytes) of one header; file offsets come from the data section."""
    k = h.kind
    if k == HeaderType.SUPPORTED_PLATFORM:
        return k, BODY_LAYOUTS[k].pack(h.compatibility_mask, h.highest_vtl, int(h.platform_type), h.platform_version,
                                       h.shared_gpa_boundary)
    if k == HeaderType.GUEST_POLICY:
        return k, GUEST_POLICY.pack(h.policy, h.compatibility_mask, 0)
    if k == HeaderType.RELOCATABLE_REGION:
        return k, RELOCATABLE_REGION.pack(h.compatibility_mask, h.vp_index, h.vtl, h.flags, h.relocation_alignment,
                                          h.relocation_region_gpa, h.relocation_region_size,
                                          h.minimum_relocation_gpa, h.maximum_relocation_gpa)
    if k == HeaderType.PAGE_TABLE_RELOCATION_REGION:
        return k, PAGE_TABLE_RELOCATION.pack(h.compatibility_mask, h.vp_index, h.vtl, 0, h.gpa, h.size, h.used_size)
    if k in (HeaderType.CORIM_DOCUMENT, HeaderType.CORIM_SIGNATURE):
        return k, CORIM_DATA.pack(h.compatibility_mask, data.add(h.data), len(h.data), 0)
    if k == HeaderType.CCA_POLICY:
        return k, CCA_POLICY.pack(h.compatibility_mask, 0, h.attributes_required_zeroes, h.attributes_required_ones,
                                  h.hash_algorithm, h.lfa_policy, bytes(6))
    if k == HeaderType.PARAMETER_AREA:
        off = data.add(h.initial_data, h.number_of_bytes) if h.initial_data is not None else 0
        return k, BODY_LAYOUTS[k].pack(h.number_of_bytes, h.parameter_area_index, off)
    if k == HeaderType.PAGE_DATA:
        size = PAGE_SIZE_2M if h.flags & PageDataFlags.IS_2MB_PAGE else PAGE_SIZE
        if h.data is not None and len(h.data) > size:
            raise IgvmError(f"page data at GPA {h.gpa:#x} is {len(h.data):#x} bytes, more than a {size:#x} page")
        off = data.add(h.data, size) if h.data is not None else 0
        return k, BODY_LAYOUTS[k].pack(h.gpa, h.compatibility_mask, off, h.flags, h.data_type, 0)
    if k == HeaderType.PARAMETER_INSERT:
        return k, BODY_LAYOUTS[k].pack(h.gpa, h.compatibility_mask, h.parameter_area_index)
    if k == HeaderType.VP_CONTEXT:
        return k, BODY_LAYOUTS[k].pack(h.gpa, h.compatibility_mask, data.add(h.data), h.vp_index, 0)
    if k == HeaderType.REQUIRED_MEMORY:
        return k, BODY_LAYOUTS[k].pack(h.gpa, h.compatibility_mask, h.number_of_bytes, h.flags, 0)
    if k == HeaderType.ERROR_RANGE:
        return k, BODY_LAYOUTS[k].pack(h.gpa, h.compatibility_mask, h.size_bytes)
    if k == HeaderType.SNP_ID_BLOCK:
        return k, BODY_LAYOUTS[k].pack(h.compatibility_mask, h.author_key_enabled, bytes(3), h.ld, h.family_id,
                                       h.image_id, h.version, h.guest_svn, h.id_key_algorithm, h.author_key_algorithm,
                                       h.id_key_signature, h.id_public_key, h.author_key_signature,
                                       h.author_public_key)
    if k == HeaderType.VBS_MEASUREMENT:
        return k, BODY_LAYOUTS[k].pack(h.compatibility_mask, h.version, h.product_id, h.module_id,
                                       h.security_version, h.policy_flags, h.boot_digest_algo, h.signing_algo,
                                       h.boot_measurement_digest, h.signature, h.public_key)
    if m.is_a(h, "ParameterUsage"):
        return k, PARAMETER.pack(h.parameter_area_index, h.byte_offset)
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
        parts.append(VARIABLE_HEADER.pack(typ, len(body)) + body + bytes(-len(body) % 8))
    var = b"".join(parts)
    if data.size == 0:
        data.add(bytes(8))
    total = fixed + len(var) + data.size
    if total >= 1 << 32:
        raise IgvmError(f"the file would be {total:#x} bytes; IGVM files must be under 4 GiB")
    if f.version == 2:
        head = FIXED_HEADER_V2.pack(MAGIC, 2, fixed, len(var), total, 0, int(f.architecture), f.page_size)
    else:
        head = FIXED_HEADER_V1.pack(MAGIC, 1, fixed, len(var), total, 0)
    crc = zlib.crc32(var, zlib.crc32(head)) & 0xFFFFFFFF
    head = head[:CHECKSUM_OFFSET] + crc.to_bytes(4, "little") + head[CHECKSUM_OFFSET + 4:]
    return b"".join([head, var, *data.chunks])

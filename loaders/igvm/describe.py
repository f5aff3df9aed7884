"""Plain-data descriptions of an IgvmFile for `pyvmm igvm dump`: headers as dicts, page data coalesced.

JSON schema "pyvmm-igvm-dump/1" (stable; fields are only ever added):
  file: {version, architecture, page_size, size, checksum}
  platforms, initialization, directives: lists of {index, offset, type, <fields of that header>}
      integers stay integers; named constants (loaders.named) are names; data blobs become {size, sha256} (and "hex" when
      at most 64 bytes); a zero page has data null; VP contexts add "registers" (native or VBS names).
  page_ranges: [{first_gpa, end_gpa, pages, compatibility_mask, flags, data_type, zero_pages}], runs of
      PAGE_DATA in file order with contiguous GPAs and identical mask/flags/type
  totals: {headers, page_data, data_pages, zero_pages, parameter_areas, vp_contexts}
"""

from __future__ import annotations

import hashlib

from .constants import PAGE_SIZE, PAGE_SIZE_2M, HeaderType, PageDataFlags, PageDataType, Platform
from ..named import Named
from ..record import fields
from .model import IgvmFile, PageData, VpContext
from .structs import BODY_LAYOUTS, VARIABLE_HEADER
from .vpcontext import parse_native_context, parse_vbs_context

SCHEMA = "pyvmm-igvm-dump/1"


def _value(v, memo: dict | None = None, key=None):
    """A field for the dump; blobs become {size, sha256[, hex]}, hashed once per (file offset, size) in `memo`."""
    if isinstance(v, Named):
        return v.name
    if isinstance(v, (bytes, bytearray, memoryview)):
        if memo is not None and key is not None and (key, len(v)) in memo:
            return dict(memo[key, len(v)])
        out = {"size": len(v), "sha256": hashlib.sha256(v).hexdigest()}
        if len(v) <= 64:
            out["hex"] = bytes(v).hex()
        if memo is not None and key is not None:
            memo[key, len(v)] = out
        return out
    return v


def header_dict(h, index: int, offset: int, platforms, raw=None, memo: dict | None = None) -> dict:
    """One header as a dict. With the file (`raw`) and a `memo`, a blob that several headers name at one file
    offset is hashed once: a file of small headers naming one large blob must not cost its size per header."""
    d = {"index": index, "offset": offset, "type": h.kind.name}
    key = None
    layout = BODY_LAYOUTS.get(int(h.kind))
    if raw is not None and offset is not None and layout is not None and "file_offset" in layout.fields:
        key = layout.read(raw, offset + VARIABLE_HEADER.size).file_offset
    for f in fields(h):
        if f.name != "kind":
            d[f.name] = _value(getattr(h, f.name), memo, key)
    if isinstance(h, VpContext):
        plat = next((p.platform_type for p in platforms if p.compatibility_mask == h.compatibility_mask), None)
        d["platform"] = plat.name if plat is not None else None
        if plat in (Platform.NATIVE, Platform.SEV):
            d["registers"] = parse_native_context(h.data)
        elif plat == Platform.VSM_ISOLATION:
            d["registers"] = {r.name: int.from_bytes(r.value[:8], "little") for r in parse_vbs_context(h.data)}
    return d


def page_ranges(directives) -> list[dict]:
    runs: list[dict] = []
    for d in directives:
        if not isinstance(d, PageData):
            continue
        size = PAGE_SIZE_2M if d.flags & PageDataFlags.IS_2MB_PAGE else PAGE_SIZE
        last = runs[-1] if runs else None
        if (last and last["end_gpa"] == d.gpa and last["compatibility_mask"] == d.compatibility_mask
                and last["flags"] == d.flags and last["data_type"] == PageDataType(d.data_type).name):
            last["end_gpa"] += size
            last["pages"] += 1
            last["zero_pages"] += d.data is None
        else:
            runs.append({"first_gpa": d.gpa, "end_gpa": d.gpa + size, "pages": 1,
                         "compatibility_mask": d.compatibility_mask, "flags": d.flags,
                         "data_type": PageDataType(d.data_type).name, "zero_pages": int(d.data is None)})
    return runs


def describe(f: IgvmFile, raw: bytes | memoryview) -> dict:
    offs = list(f.header_offsets)
    np, ni = len(f.platforms), len(f.initializations)
    off = lambda i: offs[i] if i < len(offs) else None  # noqa: E731
    pages = [d for d in f.directives if isinstance(d, PageData)]
    memo: dict = {}
    return {
        "schema": SCHEMA,
        "file": {"version": f.version, "architecture": f.architecture.name, "page_size": f.page_size,
                 "size": len(raw), "checksum": int.from_bytes(bytes(raw[20:24]), "little")},
        "platforms": [header_dict(p, i, off(i), f.platforms) for i, p in enumerate(f.platforms)],
        "initialization": [header_dict(h, np + i, off(np + i), f.platforms, raw, memo)
                           for i, h in enumerate(f.initializations)],
        "directives": [header_dict(h, np + ni + i, off(np + ni + i), f.platforms, raw, memo)
                       for i, h in enumerate(f.directives) if not isinstance(h, PageData)],
        "page_ranges": page_ranges(f.directives),
        "totals": {"headers": np + ni + len(f.directives), "page_data": len(pages),
                   "data_pages": sum(p.data is not None for p in pages),
                   "zero_pages": sum(p.data is None for p in pages),
                   "parameter_areas": sum(d.kind == HeaderType.PARAMETER_AREA for d in f.directives),
                   "vp_contexts": sum(d.kind == HeaderType.VP_CONTEXT for d in f.directives)},
    }

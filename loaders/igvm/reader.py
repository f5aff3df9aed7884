"""The strict IGVM reader: bytes -> IgvmFile, enforcing every rule of the igvm crate's parser and then some.

Where this reader is stricter than the reference parser it says so in the message ("stricter than the
igvm crate"). Errors name the header index, its file offset and the rule. Page data is never copied:
directives hold memoryviews into the caller's buffer, and PAGE_DATA headers stay in it (directives.Directives).
"""

from __future__ import annotations

import bisect
from array import array
import zlib

from ..errors import IgvmError
from . import model as m
from .constants import (MAGIC, OPTIONAL_BIT, PAGE_SIZE, PAGE_SIZE_2M, PARAMETER_USAGE_TYPES, PLATFORM_ARCHES,
                        RANGE_INIT, RANGE_PLATFORM, RESERVED_DO_NOT_USE, Architecture, HeaderType, PageDataFlags,
                        Platform, RelocationFlags)
from .structs import (BODY_LAYOUTS, CHECKSUM_OFFSET, FIXED_HEADER_V1, FIXED_HEADER_V2, NATIVE_VP_CONTEXT_X64,
                      PAGE_DATA, VARIABLE_HEADER, VBS_CONTEXT_HEADER, VBS_REGISTER)
from .directives import Directives
from .vpcontext import parse_vbs_context

_HT = {int(t): t for t in HeaderType}
_AREA_DECLARED, _AREA_INSERTED = 1, 2


def _name(typ: int) -> str:
    t = _HT.get(typ)
    return t.name if t is not None else f"type {typ:#x}"


class _Reader:
    def __init__(self, data) -> None:
        self.buf = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
        self.size = len(self.buf)
        self.index = -1
        self.offset = 0
        self.typ = 0

    def fail(self, rule: str) -> IgvmError:
        if self.index < 0:
            return IgvmError(f"fixed header: {rule}")
        return IgvmError(f"header #{self.index} ({_name(self.typ)}) at file offset {self.offset:#x}: {rule}")

    # --- helpers --------------------------------------------------------------------------
    def data_ref(self, file_offset: int, length: int, what: str) -> memoryview:
        """length bytes at an absolute offset that must lie in the file-data section."""
        if file_offset < self.data_start:
            raise self.fail(f"{what} file offset {file_offset:#x} points before the file data section "
                            f"(which starts at {self.data_start:#x})")
        if file_offset + length > self.size:
            raise self.fail(f"{what} needs {length:#x} bytes at file offset {file_offset:#x}, past the end of "
                            f"the file ({self.size:#x} bytes)")
        return self.buf[file_offset:file_offset + length]

    def check_mask(self, mask: int) -> None:
        if mask == 0:
            raise self.fail("compatibility mask is 0: the header applies to no platform")
        if mask & ~self.declared_mask:
            raise self.fail(f"compatibility mask {mask:#x} names platforms the file does not declare "
                            f"(declared: {self.declared_mask:#x})")

    def aligned(self, value: int, what: str, alignment: int = PAGE_SIZE) -> None:
        if value % alignment:
            raise self.fail(f"{what} {value:#x} is not {alignment:#x}-aligned")

    def claim_region(self, mask: int, gpa: int, size: int, what: str) -> None:
        """A relocatable or page-table region: none of one platform's may overlap another (the igvm crate's
        RelocationRegionsOverlap, checked per mask bit), and none may run past the 64-bit address space.

        Each platform's claimed regions stay sorted and disjoint, so a new one is checked against its two
        neighbours only (a file of 100,000 regions reads in linear time, not quadratic)."""
        end = gpa + size
        if end > 1 << 64:
            raise self.fail(f"{what} {gpa:#x}+{size:#x} runs past the end of the 64-bit address space")
        if not size:
            return
        for bit in range(32):
            if mask >> bit & 1:
                starts, claimed = self.regions.setdefault(bit, ([], []))
                i = bisect.bisect_right(starts, gpa)
                for start, stop, other in claimed[max(i - 1, 0):i + 1]:
                    if gpa < stop and start < end:
                        raise self.fail(f"{what} {gpa:#x}-{end:#x} overlaps the {other} at {start:#x}-{stop:#x} "
                                        f"of the same platform (mask bit {bit}); the igvm crate refuses "
                                        "overlapping relocation regions")
                starts.insert(i, gpa)
                claimed.insert(i, (gpa, end, what))

    # --- the walk -------------------------------------------------------------------------
    def read(self) -> m.IgvmFile:
        buf = self.buf
        if self.size < FIXED_HEADER_V1.size:
            raise self.fail(f"file is {self.size} bytes, shorter than the {FIXED_HEADER_V1.size}-byte fixed header")
        fh = FIXED_HEADER_V1.read(buf, 0)
        magic, version, checksum = fh.magic, fh.format_version, fh.checksum
        vh_off, vh_size, total = fh.variable_header_offset, fh.variable_header_size, fh.total_file_size
        if magic != MAGIC:
            raise self.fail(f"bad magic {magic:#010x} (an IGVM file starts with 'IGVM')")
        if version not in (1, 2):
            raise self.fail(f"format version {version} is not 1 or 2")
        fixed_size = FIXED_HEADER_V1.size
        arch, page_size = Architecture.X64, PAGE_SIZE
        if version == 2:
            if self.size < FIXED_HEADER_V2.size:
                raise self.fail("version 2 file is shorter than the 32-byte fixed header")
            fh2 = FIXED_HEADER_V2.read(buf, 0)
            if fh2.architecture not in (0, 1):
                raise self.fail(f"architecture {fh2.architecture} is not X64 (0) or AARCH64 (1)")
            arch = Architecture(fh2.architecture)
            page_size = fh2.page_size
            if page_size != PAGE_SIZE:
                raise self.fail(f"page size {page_size} is not 4096 (the only size the format supports)")
            fixed_size = FIXED_HEADER_V2.size
        if total != self.size:
            raise self.fail(f"total_file_size {total:#x} does not match the file's length {self.size:#x}")
        if vh_off < fixed_size or vh_off % 8:
            raise self.fail(f"variable header offset {vh_off:#x} must be 8-aligned and not inside the "
                            f"{fixed_size}-byte fixed header (stricter than the igvm crate)")
        if vh_off + vh_size >= total:
            raise self.fail(f"variable headers end at {vh_off + vh_size:#x}, leaving no file data before the end "
                            f"{total:#x} (the igvm crate rejects an empty data section)")
        header = bytearray(buf[:fixed_size])
        header[CHECKSUM_OFFSET:CHECKSUM_OFFSET + 4] = bytes(4)
        crc = zlib.crc32(buf[vh_off:vh_off + vh_size], zlib.crc32(header)) & 0xFFFFFFFF
        if crc != checksum:
            raise self.fail(f"checksum {checksum:#010x} does not match the computed CRC-32 {crc:#010x}")
        self.data_start = vh_off + vh_size
        self.arch = arch

        platforms: list[m.SupportedPlatform] = []
        inits: list = []
        records: dict[int, object] = {}           # directive index -> record, for those not left in the file
        offsets = array("Q")                      # file offset of each header: 8 bytes a header, not an int
        self.declared_mask = 0
        self.areas: dict[int, list] = {}          # index -> [state, size]
        self.pt_regions: dict[int, tuple[int, int]] = {}
        # mask bit -> (sorted starts, [(gpa, end, what)] in the same order) of the relocation regions claimed
        self.regions: dict[int, tuple[list[int], list[tuple[int, int, str]]]] = {}
        corim_docs = 0
        corim_sigs = 0
        vp_contexts: list[tuple[int, int, int]] = []   # (mask, vp_index, vtl) of VBS contexts
        reloc_needs: list[tuple[int, int, int]] = []
        section = 0
        pos = vh_off
        end = vh_off + vh_size
        index = 0
        unpack_vh = VARIABLE_HEADER.unpack_from
        layouts = BODY_LAYOUTS
        unpack_page, page_body = PAGE_DATA.unpack_from, PAGE_DATA.size
        size = self.size
        while pos < end:
            # Fast path for a PAGE_DATA directive after the first directive (files hold thousands in a row): the
            # same checks as the general path below, inline; anything they refuse goes there for its message.
            if section == 2 and pos + 8 + page_body <= end:
                typ, length = unpack_vh(buf, pos)
                if typ == _PAGE_DATA and length == page_body:
                    gpa, mask, off, flags, dtype, reserved = unpack_page(buf, pos + 8)
                    span = PAGE_SIZE_2M if flags & _IS_2MB else PAGE_SIZE
                    if (mask and not mask & ~self.declared_mask and not gpa % span and dtype <= 3 and not reserved
                            and (not off or self.data_start <= off and off + span <= size)):
                        offsets.append(pos)   # checked: directives.Directives makes its record when asked
                        pos = (pos + 8 + page_body + 7) & ~7
                        index += 1
                        continue
            self.index, self.offset, self.typ = index, pos, 0
            if pos + 8 > end:
                raise self.fail(f"a variable header needs 8 bytes but only {end - pos} remain in the section")
            typ, length = unpack_vh(buf, pos)
            self.typ = typ
            body = pos + 8
            if typ & OPTIONAL_BIT:
                raise self.fail("the optional bit (31) is set; like the igvm crate, this reader does not skip "
                                "optional headers it does not know")
            layout = layouts.get(typ)
            if layout is None:
                why = "reserved (formerly SHARED_BOUNDARY_GPA)" if typ == RESERVED_DO_NOT_USE else "unknown"
                raise self.fail(f"header type {typ:#x} is {why}")
            if length != layout.size:
                raise self.fail(f"length {length} is not the {layout.size}-byte size of {layout.name}")
            if body + length > end:
                raise self.fail(f"body runs past the end of the variable header section at {end:#x}")
            new_section = 0 if typ in RANGE_PLATFORM else 1 if typ in RANGE_INIT else 2
            if new_section < section:
                raise self.fail(f"{('platform', 'initialization', 'directive')[new_section]} header after a "
                                f"{('platform', 'initialization', 'directive')[section]} header (order must be "
                                f"platform, initialization, directive)")
            if new_section > 0 and not platforms:
                raise self.fail("no SUPPORTED_PLATFORM header precedes it")
            section = new_section
            f = layout.read(buf, body)
            if new_section == 0:
                platforms.append(self.platform(f, platforms))
            elif new_section == 1:
                h = self.init_header(typ, f)
                if typ == HeaderType.CORIM_DOCUMENT:
                    if corim_docs & h.compatibility_mask:
                        raise self.fail("a second CORIM document for the same platform")
                    corim_docs |= h.compatibility_mask
                elif typ == HeaderType.CORIM_SIGNATURE:
                    if h.compatibility_mask & ~corim_docs:
                        raise self.fail("CORIM signature without an earlier CORIM document for its platforms")
                    if corim_sigs & h.compatibility_mask:
                        raise self.fail("a second CORIM signature for the same platform")
                    corim_sigs |= h.compatibility_mask
                elif typ in (HeaderType.RELOCATABLE_REGION, HeaderType.PAGE_TABLE_RELOCATION_REGION):
                    reloc_needs.append((h.compatibility_mask, h.vp_index, h.vtl))
                inits.append(h)
            else:
                records[index - len(platforms) - len(inits)] = self.directive(typ, f, platforms, vp_contexts)
            offsets.append(pos)
            pos = (body + length + 7) & ~7
            index += 1
        if not platforms:
            self.index = -1
            raise self.fail("the file declares no platform (it needs at least one SUPPORTED_PLATFORM header)")
        context_masks: dict[int, int] = {}      # VTL -> the platforms with a VBS context for VP 0 at that VTL
        for cm, cvp, cvtl in vp_contexts:
            if cvp == 0:
                context_masks[cvtl] = context_masks.get(cvtl, 0) | cm
        for mask, vp, vtl in reloc_needs:
            if not (vp == 0 and context_masks.get(vtl, 0) & mask):
                raise IgvmError(f"relocation header for mask {mask:#x}, VP {vp}, VTL {vtl} has no matching VBS VP "
                                f"context (VP 0, same VTL)")
        base = len(platforms) + len(inits)
        make = m.page_data_maker() if len(records) < len(offsets) - base else None
        directives = Directives(buf, offsets, base, records, make)
        return m.IgvmFile(version, tuple(platforms), tuple(inits), directives, arch, page_size, offsets)

    def platform(self, f, platforms: list) -> m.SupportedPlatform:
        mask, vtl, ptype = f.compatibility_mask, f.highest_vtl, f.platform_type
        pver, vtom = f.platform_version, f.shared_gpa_boundary
        if mask == 0 or mask & (mask - 1):
            raise self.fail(f"compatibility mask {mask:#x} must have exactly one bit set")
        if mask & self.declared_mask:
            raise self.fail(f"compatibility mask {mask:#x} is already used by another platform "
                            "(stricter than the igvm crate)")
        try:
            pt = Platform(ptype)
        except ValueError:
            raise self.fail(f"unknown platform type {ptype:#x}") from None
        if vtl not in (0, 2):
            raise self.fail(f"highest VTL {vtl} is not 0 or 2")
        if pver != 1:
            raise self.fail(f"platform version {pver} of {pt.name} is not 1")
        if pt in (Platform.NATIVE, Platform.VSM_ISOLATION) and vtom:
            raise self.fail(f"{pt.name} must have shared_gpa_boundary 0, not {vtom:#x}")
        if self.arch not in PLATFORM_ARCHES[pt]:
            raise self.fail(f"platform {pt.name} is not allowed in a {self.arch.name} file")
        if any(p.platform_type == pt for p in platforms):
            raise self.fail(f"a second {pt.name} platform header")
        self.declared_mask |= mask
        return m.SupportedPlatform(mask, vtl, pt, pver, vtom)

    def init_header(self, typ: int, f):
        if typ == HeaderType.GUEST_POLICY:
            self.check_mask(f.compatibility_mask)
            if f.reserved:
                raise self.fail("reserved field is not zero")
            return m.GuestPolicy(f.policy, f.compatibility_mask)
        if typ == HeaderType.RELOCATABLE_REGION:
            mask, vtl, flags, align = f.compatibility_mask, f.vtl, f.flags, f.relocation_alignment
            gpa, size = f.relocation_region_gpa, f.relocation_region_size
            lo, hi = f.minimum_relocation_gpa, f.maximum_relocation_gpa
            self.check_mask(mask)
            if vtl > 2:
                raise self.fail(f"VTL {vtl} is above 2")
            if align == 0 or align % PAGE_SIZE:
                raise self.fail(f"relocation alignment {align:#x} is not a non-zero multiple of 4 KiB")
            for v, what in ((gpa, "region GPA"), (lo, "minimum relocation GPA"), (hi, "maximum relocation GPA")):
                self.aligned(v, what, align)
            if size == 0 or size % PAGE_SIZE:
                raise self.fail(f"region size {size:#x} is not a non-zero multiple of 4 KiB")
            if lo > hi:
                raise self.fail(f"minimum relocation GPA {lo:#x} is above the maximum {hi:#x}")
            if flags & ~int(RelocationFlags.IS_VTL2 | RelocationFlags.APPLY_RIP | RelocationFlags.APPLY_GDTR):
                raise self.fail(f"unknown relocation flags {flags:#x}")
            self.claim_region(mask, gpa, size, "relocatable region")
            return m.RelocatableRegion(**f._asdict())
        if typ == HeaderType.PAGE_TABLE_RELOCATION_REGION:
            mask, vtl, gpa, size, used = f.compatibility_mask, f.vtl, f.gpa, f.size, f.used_size
            self.check_mask(mask)
            if f.reserved:
                raise self.fail("reserved field is not zero")
            if vtl > 2:
                raise self.fail(f"VTL {vtl} is above 2")
            self.aligned(gpa, "GPA")
            if size % PAGE_SIZE or used % PAGE_SIZE or used > size:
                raise self.fail(f"size {size:#x} and used size {used:#x} must be 4 KiB multiples with used <= size")
            for bit in range(32):
                if mask >> bit & 1:
                    if bit in self.pt_regions:
                        raise self.fail("a second page-table relocation region for the same platform")
                    self.pt_regions[bit] = (mask, gpa, size)
            self.claim_region(mask, gpa, size, "page-table relocation region")
            return m.PageTableRelocation(mask, f.vp_index, vtl, gpa, size, used)
        if typ in (HeaderType.CORIM_DOCUMENT, HeaderType.CORIM_SIGNATURE):
            self.check_mask(f.compatibility_mask)
            if f.reserved:
                raise self.fail("reserved field is not zero")
            data = self.data_ref(f.file_offset, f.size_bytes, "CORIM data")
            cls = m.CorimDocument if typ == HeaderType.CORIM_DOCUMENT else m.CorimSignature
            return cls(f.compatibility_mask, data)
        if typ == HeaderType.CCA_POLICY:
            zeroes, ones = f.attributes_required_zeroes, f.attributes_required_ones
            halg, lfa = f.hash_algorithm, f.lfa_policy
            self.check_mask(f.compatibility_mask)
            if self.arch != Architecture.AARCH64:
                raise self.fail("CCA policy in an X64 file")
            if f.reserved or any(f.reserved2):
                raise self.fail("reserved field is not zero")
            if zeroes & ones:
                raise self.fail(f"attributes required zero and one overlap ({zeroes & ones:#x})")
            if halg > 2 or lfa > 1:
                raise self.fail(f"hash algorithm {halg} or LFA policy {lfa} is out of range")
            return m.CcaPolicy(f.compatibility_mask, zeroes, ones, halg, lfa)
        raise self.fail("not an initialization header")  # unreachable: ranges are checked

    def directive(self, typ: int, f, platforms: list, vp_contexts: list):
        if typ == HeaderType.PAGE_DATA:
            gpa, mask, off, flags, dtype = f.gpa, f.compatibility_mask, f.file_offset, f.flags, f.data_type
            self.check_mask(mask)
            big = flags & _IS_2MB
            size = PAGE_SIZE_2M if big else PAGE_SIZE
            if gpa % size:
                raise self.fail(f"page GPA {gpa:#x} is not {size:#x}-aligned")
            if dtype > 3:
                raise self.fail(f"page data type {dtype} is not NORMAL, SECRETS, CPUID_DATA or CPUID_XF")
            if f.reserved:
                raise self.fail("reserved field is not zero")
            data = self.data_ref(off, size, "page data") if off else None
            return m.PageData(gpa, mask, flags, dtype, data, off)
        if typ in PARAMETER_USAGE_TYPES:
            idx, byte_offset = f.parameter_area_index, f.byte_offset
            area = self.areas.get(idx)
            if area is None:
                raise self.fail(f"parameter area {idx} is not declared before its use")
            if area[0] == _AREA_INSERTED:
                raise self.fail(f"parameter area {idx} was already inserted")
            if byte_offset >= area[1]:
                raise self.fail(f"byte offset {byte_offset:#x} is outside parameter area {idx} of {area[1]:#x} bytes "
                                "(stricter than the igvm crate)")
            return m.ParameterUsage(_HT[typ], idx, byte_offset)
        if typ == HeaderType.PARAMETER_AREA:
            size, idx, off = f.number_of_bytes, f.parameter_area_index, f.file_offset
            if size == 0 or size % PAGE_SIZE:
                raise self.fail(f"parameter area size {size:#x} is not a non-zero multiple of 4 KiB")
            if idx in self.areas:
                raise self.fail(f"parameter area index {idx} is declared twice")
            self.areas[idx] = [_AREA_DECLARED, size]
            data = self.data_ref(off, size, "parameter area initial data") if off else None
            return m.ParameterArea(size, idx, data)
        if typ == HeaderType.PARAMETER_INSERT:
            gpa, mask, idx = f.gpa, f.compatibility_mask, f.parameter_area_index
            self.check_mask(mask)
            self.aligned(gpa, "insert GPA")
            area = self.areas.get(idx)
            if area is None:
                raise self.fail(f"parameter area {idx} is not declared before its insert")
            if area[0] == _AREA_INSERTED:
                raise self.fail(f"parameter area {idx} is inserted a second time")
            for bit, (pmask, pgpa, psize) in self.pt_regions.items():
                if mask >> bit & 1 and pgpa <= gpa < pgpa + psize:
                    raise self.fail("parameter insert lands inside a page-table relocation region")
            area[0] = _AREA_INSERTED
            return m.ParameterInsert(gpa, mask, idx)
        if typ == HeaderType.VP_CONTEXT:
            return self.vp_context(f, platforms, vp_contexts)
        if typ == HeaderType.REQUIRED_MEMORY:
            gpa, mask, size = f.gpa, f.compatibility_mask, f.number_of_bytes
            self.check_mask(mask)
            self.aligned(gpa, "GPA")
            if size % PAGE_SIZE:
                raise self.fail(f"size {size:#x} is not a multiple of 4 KiB")
            if f.reserved:
                raise self.fail("reserved field is not zero")
            return m.RequiredMemory(gpa, mask, size, f.flags)
        if typ == HeaderType.ERROR_RANGE:
            gpa, mask, size = f.gpa, f.compatibility_mask, f.size_bytes
            self.check_mask(mask)
            self.aligned(gpa, "GPA")
            if size == 0 or size % PAGE_SIZE:
                raise self.fail(f"size {size:#x} is not a non-zero multiple of 4 KiB (igvm_defs: size_bytes "
                                "must be page aligned; an empty range reserves nothing)")
            return m.ErrorRange(gpa, mask, size)
        if typ == HeaderType.SNP_ID_BLOCK:
            self.check_mask(f.compatibility_mask)
            return m.SnpIdBlock(**{k: v for k, v in f._asdict().items() if k != "reserved"})
        if typ == HeaderType.VBS_MEASUREMENT:
            self.check_mask(f.compatibility_mask)
            return m.VbsMeasurement(**f._asdict())
        raise self.fail("not a directive header")  # unreachable

    def vp_context(self, f, platforms: list, vp_contexts: list) -> m.VpContext:
        gpa, mask, off, vp = f.gpa, f.compatibility_mask, f.file_offset, f.vp_index
        plat = next((p for p in platforms if p.compatibility_mask == mask), None)
        if plat is None:
            raise self.fail(f"VP context mask {mask:#x} is not exactly one declared platform's mask")
        if f.reserved:
            raise self.fail("reserved field is not zero (stricter than the igvm crate)")
        pt = plat.platform_type
        if pt == Platform.TDX:
            raise self.fail("TDX has no VP context (it starts from its architectural reset state)")
        if pt == Platform.VSM_ISOLATION:
            head = self.data_ref(off, VBS_CONTEXT_HEADER.size, "VBS VP context")
            count = VBS_CONTEXT_HEADER.read(head).register_count
            if count > (self.size - off) // VBS_REGISTER.size:
                raise self.fail(f"VBS VP context declares {count} registers, more than the file holds")
            data = self.data_ref(off, VBS_CONTEXT_HEADER.size + VBS_REGISTER.size * count, "VBS VP context")
            if vp != 0:
                raise self.fail(f"VBS VP context for VP {vp}: only VP 0 may have one")
            # A second list for one platform and VTL is refused before it is parsed: otherwise thousands of
            # small headers naming one long register list would parse it thousands of times.
            vtl = VBS_REGISTER.read(data, VBS_CONTEXT_HEADER.size).vtl if count else None
            if any(cm == mask and cvtl == vtl for cm, _, cvtl in vp_contexts):
                raise self.fail(f"a second VBS VP context for VTL {vtl} of this platform (stricter than the igvm "
                                "crate, which keeps both; which one would apply?)")
            try:
                regs = parse_vbs_context(data)
            except Exception as e:
                raise self.fail(str(e)) from None
            vtls = {r.vtl for r in regs}
            if len(vtls) != 1:
                raise self.fail(f"VBS VP context mixes VTLs {sorted(vtls)}")
            vp_contexts.append((mask, vp, vtls.pop()))
            return m.VpContext(gpa, mask, vp, data)
        if self.arch != Architecture.X64 and pt != Platform.CCA:
            raise self.fail(f"{pt.name} VP context in an {self.arch.name} file")
        if pt in (Platform.SEV_SNP, Platform.SEV_ES) and gpa % PAGE_SIZE:
            raise self.fail(f"{pt.name} VMSA GPA {gpa:#x} is not 4 KiB-aligned (the igvm crate refuses it: "
                            "the VMSA is a page of its own)")
        data = self.data_ref(off, PAGE_SIZE, "VP context")
        if pt in (Platform.NATIVE, Platform.SEV):
            if any(data[NATIVE_VP_CONTEXT_X64.size:]):
                raise self.fail("native VP context page has non-zero bytes after its 232-byte context")
            ctx = NATIVE_VP_CONTEXT_X64.read(data)
            if (ctx.code_attributes | ctx.data_attributes) & 0x0F00:
                raise self.fail("segment attributes have bits 11:8 set (they must be zero)")
        return m.VpContext(gpa, mask, vp, data)


_IS_2MB = int(PageDataFlags.IS_2MB_PAGE)   # plain int: IntFlag arithmetic costs microseconds per header
_PAGE_DATA = int(HeaderType.PAGE_DATA)
# The hot loop unpacks PAGE_DATA positionally (a record per page costs a fifth of the read); this is the
# order it relies on.
if PAGE_DATA.fields != ("gpa", "compatibility_mask", "file_offset", "flags", "data_type", "reserved"):
    raise AssertionError("the PAGE_DATA fast path assumes the IGVM_VHS_PAGE_DATA field order")


def read_igvm(data: bytes | bytearray | memoryview) -> m.IgvmFile:
    """Parse and validate an IGVM file; raises IgvmError (and nothing else) for any bad input."""
    r = _Reader(data)
    try:
        return r.read()
    except IgvmError:
        raise
    except (ValueError, IndexError, OverflowError, TypeError) as e:   # a rule this reader missed: still IgvmError
        raise r.fail(f"malformed header ({e})") from None

"""Launch measurements of IGVM files: the SEV-SNP launch digest and the TDX MRTD. Pure: bytes in, digests out.

SEV-SNP (AMD "SEV Secure Nested Paging Firmware ABI Specification", SNP_LAUNCH_UPDATE and its PAGE_INFO
structure): the launch digest starts as 48 zero bytes; every 4 KiB page the host adds chains one 0x70-byte
PAGE_INFO record, LD = SHA-384(PAGE_INFO), whose first 48 bytes are the previous LD. The rules for which IGVM
directive becomes which record are those of the igvm crate's `measurement::snp` (microsoft/igvm) and of
COCONUT-SVSM's `igvmmeasure`, where they agree; where they differ this module follows the igvm crate (which
microsoft/igvm-tooling's own digests also follow):

- PAGE_DATA with data: NORMAL, CONTENTS = SHA-384(page); without data (a zero page): NORMAL over 4096 zero
  bytes, as QEMU/KVM measure it (`native_zero=True` gives igvmmeasure's `--native-zero`: type ZERO);
- the `unmeasured` flag: UNMEASURED; data type SECRETS: SECRETS; CPUID_DATA/CPUID_XF: CPUID (all with zero
  CONTENTS); the `shared` flag: no record (the page is not private);
- PARAMETER_INSERT: one UNMEASURED record per 4 KiB of the parameter area;
- VP_CONTEXT: one VMSA record, CONTENTS = SHA-384 of the 4 KiB VMSA page, GPA = the header's GPA;
- a 2 MiB page: 512 records of 4 KiB (igvmmeasure; the igvm crate refuses them).

vCPUs (`vcpus`, pyvmm's `-p N`): one VMSA record per vCPU. A VP_CONTEXT for VP i counts when i < N; a vCPU the
file has no VMSA for is measured as a copy of VP 0's VMSA, right after it (the firmware measures one VMSA
page per vCPU; which contents a host gives such a vCPU is the host's choice, so this is pyvmm's model).

TDX (Intel TDX Module Base Architecture Specification, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND; the igvm crate's
`measurement::tdx`): MRTD is one SHA-384 stream of 128-byte blocks. PAGE.ADD adds one block ("MEM.PAGE.ADD",
GPA); MR.EXTEND adds one block ("MR.EXTEND", GPA) and the 256 bytes of memory at that GPA. Every private page
gets PAGE.ADD, measured pages then 16 MR.EXTENDs. VP state is not part of MRTD.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from ..errors import IgvmError
from . import model as m
from .constants import PAGE_SIZE, PageDataFlags, PageDataType, Platform

DIGEST_SIZE = 48

# PAGE_INFO.PAGE_TYPE (SNP firmware ABI, SNP_LAUNCH_UPDATE).
PAGE_TYPE_NORMAL = 1
PAGE_TYPE_VMSA = 2
PAGE_TYPE_ZERO = 3
PAGE_TYPE_UNMEASURED = 4
PAGE_TYPE_SECRETS = 5
PAGE_TYPE_CPUID = 6
PAGE_TYPE_NAMES = {PAGE_TYPE_NORMAL: "normal", PAGE_TYPE_VMSA: "vmsa", PAGE_TYPE_ZERO: "zero",
                   PAGE_TYPE_UNMEASURED: "unmeasured", PAGE_TYPE_SECRETS: "secrets", PAGE_TYPE_CPUID: "cpuid"}

# PAGE_INFO: DIGEST_CUR[48], CONTENTS[48], LENGTH u16, PAGE_TYPE u8, IMI_PAGE u8, VMPL permissions + reserved
# (4 bytes, zero at launch), GPA u64. 0x70 bytes.
PAGE_INFO = struct.Struct("<48s48sHBBIQ")
PAGE_INFO_SIZE = PAGE_INFO.size

_ZERO_PAGE_SHA384 = hashlib.sha384(bytes(PAGE_SIZE)).digest()
_NO_CONTENTS = bytes(DIGEST_SIZE)
_SHARED = int(PageDataFlags.SHARED)
_UNMEASURED = int(PageDataFlags.UNMEASURED)
_IS_2MB = int(PageDataFlags.IS_2MB_PAGE)
_PAGES_2M = 512


def page_info(ld: bytes, contents: bytes, page_type: int, gpa: int) -> bytes:
    """One SNP PAGE_INFO record (0x70 bytes) that extends launch digest `ld`."""
    return PAGE_INFO.pack(ld, contents, PAGE_INFO_SIZE, page_type, 0, 0, gpa)


def snp_extend(ld: bytes, contents: bytes, page_type: int, gpa: int) -> bytes:
    """LD' = SHA-384(PAGE_INFO(LD, contents, type, gpa))."""
    return hashlib.sha384(page_info(ld, contents, page_type, gpa)).digest()


@dataclass
class Measurement:
    """A computed launch measurement and how it was made (for `pyvmm igvm measure` and the plan text)."""
    platform: Platform
    digest: bytes
    vcpus: int = 1
    counts: dict[str, int] = field(default_factory=dict)     # records (SNP page types, TDX operations)
    id_block_ld: bytes | None = None                          # SNP: the ld the file's SNP_ID_BLOCK expects
    notes: list[str] = field(default_factory=list)

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


def _platform(f: m.IgvmFile, pt: Platform) -> m.SupportedPlatform:
    p = f.platform(pt)
    if p is None:
        names = ", ".join(x.name for x in f.platform_types()) or "none"
        raise IgvmError(f"the file declares no {pt.name} platform (it declares: {names})")
    return p


def _pages(d) -> list[tuple[int, bytes | memoryview | None]]:
    """(gpa, 4 KiB chunk or None for zeroes) for each 4 KiB page of a PAGE_DATA header."""
    if not d.flags & _IS_2MB:
        return [(d.gpa, d.data)]
    out = []
    for i in range(_PAGES_2M):
        chunk = d.data[i * PAGE_SIZE:(i + 1) * PAGE_SIZE] if d.data is not None else None
        out.append((d.gpa + i * PAGE_SIZE, chunk if chunk is not None and len(chunk) else None))
    return out


def _page_bytes(chunk) -> bytes:
    b = bytes(chunk)
    return b if len(b) == PAGE_SIZE else b.ljust(PAGE_SIZE, b"\0")


def _area_pages(size: int) -> int:
    return max(1, -(-size // PAGE_SIZE))


def _platform_directives(f: m.IgvmFile, bit: int, res: Measurement):
    """(directive, parameter area sizes so far) for each directive a measurement of platform `bit` records, in file
    order: parameter areas are only noted (their inserts are measured), other platforms' directives skipped, and
    shared pages counted, never measured."""
    areas: dict[int, int] = {}
    for d in f.directives:
        if m.is_a(d, "ParameterArea"):
            areas[d.parameter_area_index] = d.number_of_bytes
            continue
        mask = getattr(d, "compatibility_mask", None)
        if mask is not None and not mask & bit:
            continue
        if m.is_a(d, "PageData") and d.flags & _SHARED:
            res.count("shared (not measured)", 512 if d.flags & _IS_2MB else 1)
            continue
        yield d, areas


def _insert_gpas(d, areas: dict[int, int]) -> range:
    """The GPAs of the pages a PARAMETER_INSERT places (its area's size, at least one page)."""
    return range(d.gpa, d.gpa + _area_pages(areas.get(d.parameter_area_index, PAGE_SIZE)) * PAGE_SIZE, PAGE_SIZE)


def snp_launch_digest(f: m.IgvmFile, vcpus: int = 1, native_zero: bool = False) -> Measurement:
    """The SEV-SNP launch digest of `f`'s SEV_SNP directives in file order, for `vcpus` vCPUs."""
    if vcpus < 1:
        raise IgvmError(f"vCPU count {vcpus} is below 1")
    bit = _platform(f, Platform.SEV_SNP).compatibility_mask
    res = Measurement(Platform.SEV_SNP, bytes(DIGEST_SIZE), vcpus)
    if not any(m.is_a(h, "GuestPolicy") and h.compatibility_mask & bit for h in f.initializations):
        res.notes.append("the file has no GUEST_POLICY for SEV-SNP: a real launch needs one (the igvm crate "
                         "refuses to measure such a file)")
    ld = res.digest
    vmsa_vps: set[int] = set()
    in_file = {d.vp_index for d in f.directives if m.is_a(d, "VpContext") and d.compatibility_mask & bit}
    bsp_vmsa: bytes | None = None
    for d, areas in _platform_directives(f, bit, res):
        if m.is_a(d, "PageData"):
            for gpa, chunk in _pages(d):
                if d.data_type == PageDataType.SECRETS:
                    typ, contents = PAGE_TYPE_SECRETS, _NO_CONTENTS
                elif d.data_type in (PageDataType.CPUID_DATA, PageDataType.CPUID_XF):
                    typ, contents = PAGE_TYPE_CPUID, _NO_CONTENTS
                elif d.flags & _UNMEASURED:
                    typ, contents = PAGE_TYPE_UNMEASURED, _NO_CONTENTS
                elif chunk is None:
                    typ, contents = (PAGE_TYPE_ZERO, _NO_CONTENTS) if native_zero else (PAGE_TYPE_NORMAL,
                                                                                         _ZERO_PAGE_SHA384)
                else:
                    typ, contents = PAGE_TYPE_NORMAL, hashlib.sha384(_page_bytes(chunk)).digest()
                ld = snp_extend(ld, contents, typ, gpa)
                res.count("normal (zeroes)" if contents is _ZERO_PAGE_SHA384 else PAGE_TYPE_NAMES[typ])
        elif m.is_a(d, "ParameterInsert"):
            for gpa in _insert_gpas(d, areas):
                ld = snp_extend(ld, _NO_CONTENTS, PAGE_TYPE_UNMEASURED, gpa)
                res.count("unmeasured")
        elif m.is_a(d, "VpContext"):
            if d.vp_index >= vcpus or d.vp_index in vmsa_vps:
                if d.vp_index >= vcpus:
                    res.notes.append(f"VMSA of VP {d.vp_index} not measured: the launch has {vcpus} vCPU(s)")
                continue
            page = _page_bytes(d.data)
            page_hash = hashlib.sha384(page).digest()
            vmsa_vps.add(d.vp_index)
            ld = snp_extend(ld, page_hash, PAGE_TYPE_VMSA, d.gpa)
            res.count("vmsa")
            if d.vp_index == 0:
                bsp_vmsa = page
                missing = [i for i in range(1, vcpus) if i not in in_file]
                for _ in missing:
                    ld = snp_extend(ld, page_hash, PAGE_TYPE_VMSA, d.gpa)
                    res.count("vmsa")
                if missing:
                    res.notes.append(f"{len(missing)} vCPU(s) have no VMSA in the file: measured as copies of "
                                     "VP 0's VMSA")
        elif m.is_a(d, "SnpIdBlock") and res.id_block_ld is None:
            res.id_block_ld = bytes(d.ld)
    if bsp_vmsa is None:
        res.notes.append("the file has no SEV-SNP VMSA for VP 0")
    res.digest = ld
    return res


# --- TDX ----------------------------------------------------------------------------------
_TDX_BLOCK = struct.Struct("<16sQ104x")       # the 128-byte block: API name (ASCII, zero padded), GPA, zeroes
_MR_EXTEND_CHUNK = 256


def tdx_page_add_block(gpa: int) -> bytes:
    return _TDX_BLOCK.pack(b"MEM.PAGE.ADD", gpa)


def tdx_mr_extend_blocks(gpa: int, chunk: bytes) -> bytes:
    """The 384 bytes one TDH.MR.EXTEND feeds into MRTD: its block and the 256 bytes of memory."""
    return _TDX_BLOCK.pack(b"MR.EXTEND", gpa) + chunk


def tdx_mrtd(f: m.IgvmFile) -> Measurement:
    """MRTD of `f`'s TDX directives in file order (what TDH.MR.FINALIZE would report)."""
    bit = _platform(f, Platform.TDX).compatibility_mask
    res = Measurement(Platform.TDX, b"")
    h = hashlib.sha384()
    for d, areas in _platform_directives(f, bit, res):
        if m.is_a(d, "PageData"):
            for gpa, chunk in _pages(d):
                h.update(tdx_page_add_block(gpa))
                res.count("PAGE.ADD")
                if d.flags & _UNMEASURED:
                    continue
                page = _page_bytes(chunk) if chunk is not None else bytes(PAGE_SIZE)
                for off in range(0, PAGE_SIZE, _MR_EXTEND_CHUNK):
                    h.update(tdx_mr_extend_blocks(gpa + off, page[off:off + _MR_EXTEND_CHUNK]))
                res.count("MR.EXTEND", PAGE_SIZE // _MR_EXTEND_CHUNK)
        elif m.is_a(d, "ParameterInsert"):
            for gpa in _insert_gpas(d, areas):
                h.update(tdx_page_add_block(gpa))
                res.count("PAGE.ADD")
    res.digest = h.digest()
    return res


def measure(f: m.IgvmFile, platform: str | None = None, vcpus: int = 1, native_zero: bool = False) -> Measurement:
    """The launch measurement for `platform` ('sev_snp' or 'tdx'); default: SEV-SNP if declared, else TDX."""
    if platform is None:
        types = f.platform_types()
        if Platform.SEV_SNP in types:
            pt = Platform.SEV_SNP
        elif Platform.TDX in types:
            pt = Platform.TDX
        else:
            names = ", ".join(x.name for x in types) or "none"
            raise IgvmError(f"the file declares neither SEV_SNP nor TDX (it declares: {names}); only those two "
                            "platforms have a launch measurement pyvmm computes")
    else:
        key = platform.lower().replace("-", "_")
        if key not in ("sev_snp", "tdx"):
            raise IgvmError(f"cannot measure platform {platform!r}: choose sev_snp or tdx")
        pt = Platform[key.upper()]
    if pt == Platform.SEV_SNP:
        return snp_launch_digest(f, vcpus, native_zero)
    if vcpus < 1:
        raise IgvmError(f"vCPU count {vcpus} is below 1")
    res = tdx_mrtd(f)
    res.vcpus = vcpus
    return res

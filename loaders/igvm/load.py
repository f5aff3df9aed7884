"""IGVM file + chosen platform -> load plan, for a non-isolated VM (the igvm crate's loader rules
and QEMU backends/igvm.c).

Pure: no KVM, no guest memory. Host parameters are requested, not filled (see loaders/igvm/parameters.py);
RAM checks happen in LoadPlan.check once the machine's layout is known.
"""

from __future__ import annotations

from ..errors import IgvmError, LoadError
from ..plan import LoadPlan, MemoryWrite, ParameterRequest, VpState, ZeroRange
from . import model as m
from .constants import HeaderType, PAGE_SIZE, PageDataFlags, PageDataType, Platform
from .vpcontext import native_context_to_state, parse_native_context, parse_vbs_context, vbs_to_state

RESET_VECTOR = 0xFFFFFFF0      # where an x86 processor fetches first after reset (CS base 0xFFFF0000, IP 0xFFF0)

# Platforms pyvmm can launch as a plain (non-isolated) VM, in order of preference.
LAUNCHABLE = (Platform.NATIVE, Platform.VSM_ISOLATION)


def choose_platform(f: m.IgvmFile, wanted: str | None = None) -> m.SupportedPlatform:
    """NATIVE if present, else VSM_ISOLATION (run as a VTL0 guest); `wanted` (a platform name) overrides."""
    names = ", ".join(p.name for p in f.platform_types()) or "none"
    if wanted is not None:
        try:
            pt = Platform[wanted.upper().replace("-", "_")]
        except KeyError:
            raise LoadError(f"unknown platform {wanted!r}; IGVM platforms are "
                            f"{', '.join(p.name.lower() for p in Platform)}") from None
        if pt not in LAUNCHABLE:
            raise LoadError(f"platform {pt.name} needs confidential-computing hardware; pyvmm launches "
                            f"{' or '.join(p.name for p in LAUNCHABLE)} (the file declares: {names})")
        p = f.platform(pt)
        if p is None:
            raise LoadError(f"the file declares no {pt.name} platform (it declares: {names})")
        return p
    for pt in LAUNCHABLE:
        p = f.platform(pt)
        if p is not None:
            return p
    raise LoadError(f"no platform pyvmm can launch: the file declares {names}; pyvmm needs NATIVE or "
                    "VSM_ISOLATION (SEV, SEV-ES, SEV-SNP, TDX and CCA need confidential-computing hardware)")


# Bytes the planner may copy to join pages that are contiguous in the guest but not in the file (the writer
# stores identical pages once). A file of small headers that all name one data page would otherwise turn each
# 32-byte header into a 4 KiB copy: past this budget such runs stay slices of the file, one write each.
JOIN_BUDGET = 64 << 20


class _Runs:
    """Contiguous page data coalesced into big writes and zero ranges, so applying 64 MiB is a few copies.

    Pages whose data also sits back to back in the file become one slice of the file buffer (no copy).
    """

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.chunks: list = []
        self.offsets: list[int] = []             # file offset of each chunk
        self.headers: list[int] = []             # header index of each chunk
        self.start = self.end = -1
        self.zero_start = self.zero_end = -1
        self.first = self.first_zero = 0
        self.span_obj = None
        self.span_start = self.span_end = -1     # file offsets of a run that is contiguous in the file too
        self.budget = JOIN_BUDGET

    def data(self, gpa: int, chunk, file_offset: int, header: int) -> None:
        if gpa != self.end:
            self.flush_data()
            self.start, self.first = gpa, header
            self.span_obj = getattr(chunk, "obj", None) if file_offset else None
            self.span_start = self.span_end = file_offset
        if self.span_obj is not None and (file_offset != self.span_end or getattr(chunk, "obj", None)
                                          is not self.span_obj):
            self.span_obj = None
        self.chunks.append(chunk)
        self.offsets.append(file_offset)
        self.headers.append(header)
        self.end = gpa + len(chunk)
        self.span_end = file_offset + len(chunk)

    def zero(self, gpa: int, size: int, header: int) -> None:
        if gpa != self.zero_end:
            self.flush_zero()
            self.zero_start, self.first_zero = gpa, header
        self.zero_end = gpa + size

    def flush_data(self) -> None:
        if self.chunks:
            size = self.end - self.start
            if len(self.chunks) == 1:
                data = self.chunks[0]
            elif self.span_obj is not None:
                data = memoryview(self.span_obj).cast("B")[self.span_start:self.span_end]   # bytes of any exporter
            elif size <= self.budget:
                self.budget -= size
                data = b"".join(self.chunks)
            else:
                data = None
                self.split()
            if data is not None:
                self.plan.writes.append(MemoryWrite(self.start, data, f"page data (header #{self.first})"))
        self.chunks, self.offsets, self.headers = [], [], []
        self.start = self.end = -1
        self.span_obj = None

    def split(self) -> None:
        """The run as one write per stretch that is contiguous in the file too: slices, nothing copied."""
        gpa = self.start
        i, n = 0, len(self.chunks)
        while i < n:
            j, obj, end = i + 1, getattr(self.chunks[i], "obj", None), self.offsets[i] + len(self.chunks[i])
            while (j < n and obj is not None and self.offsets[i] and self.offsets[j] == end
                   and getattr(self.chunks[j], "obj", None) is obj):
                end += len(self.chunks[j])
                j += 1
            data = memoryview(obj).cast("B")[self.offsets[i]:end] if j > i + 1 else self.chunks[i]
            self.plan.writes.append(MemoryWrite(gpa, data, f"page data (header #{self.headers[i]})"))
            gpa += len(data)
            i = j

    def flush_zero(self) -> None:
        if self.zero_end > self.zero_start >= 0:
            self.plan.zeros.append(ZeroRange(self.zero_start, self.zero_end - self.zero_start,
                                             f"zero pages (header #{self.first_zero})"))
        self.zero_start = self.zero_end = -1

    def flush(self) -> None:
        self.flush_data()
        self.flush_zero()


_IS_2MB = int(PageDataFlags.IS_2MB_PAGE)


def igvm_plan(f: m.IgvmFile, platform: m.SupportedPlatform) -> LoadPlan:
    """The load plan of `f` for `platform` (one of LAUNCHABLE); LoadError for anything a plain VM cannot honour."""
    if platform.platform_type not in LAUNCHABLE:
        raise LoadError(f"platform {platform.platform_type.name} cannot be launched without isolation hardware")
    bit = platform.compatibility_mask
    first_directive = len(f.platforms) + len(f.initializations)
    for i, h in enumerate(f.initializations):
        if h.compatibility_mask & bit and m.is_a(h, "RelocatableRegion", "PageTableRelocation"):
            raise LoadError(f"header #{len(f.platforms) + i} ({h.kind.name}): relocation is not supported yet; "
                            "pyvmm loads images at the addresses in the file")
    plan = LoadPlan()
    runs = _Runs(plan)
    areas: dict[int, ParameterRequest] = {}
    vbs_skipped: set[int] = set()
    native = platform.platform_type == Platform.NATIVE
    # The directive classes for isinstance, bound once; a class no header of the file used stays unmade.
    PageData, ParameterArea, ParameterUsage, ParameterInsert, RequiredMemory, ErrorRange, VpContext = map(
        m.made, ("PageData", "ParameterArea", "ParameterUsage", "ParameterInsert", "RequiredMemory", "ErrorRange",
                 "VpContext"))
    for i, d in enumerate(f.directives):
        n = first_directive + i
        mask = getattr(d, "compatibility_mask", None)
        if mask is not None and not mask & bit:
            continue
        if isinstance(d, PageData):
            if d.data_type != PageDataType.NORMAL:
                raise LoadError(f"header #{n} (PAGE_DATA at {d.gpa:#x}): {PageDataType(d.data_type).name} pages "
                                "only mean something on SEV-SNP; a non-isolated VM cannot provide them")
            if d.data is None:
                runs.flush_data()
                runs.zero(d.gpa, 2 << 20 if d.flags & _IS_2MB else PAGE_SIZE, n)
            else:
                runs.flush_zero()
                runs.data(d.gpa, d.data, d.file_offset, n)
        elif isinstance(d, ParameterArea):
            areas[d.parameter_area_index] = ParameterRequest(d.parameter_area_index, d.number_of_bytes,
                                                             d.initial_data, what=f"parameter area "
                                                             f"{d.parameter_area_index} (header #{n})")
        elif isinstance(d, ParameterUsage):
            if d.kind == HeaderType.DEVICE_TREE:
                raise LoadError(f"header #{n}: the file asks for a DEVICE_TREE parameter, which pyvmm does not "
                                "provide (it describes OpenHCL partitions); use the MEMORY_MAP/MADT/SRAT usages")
            areas[d.parameter_area_index].usages.append((d.kind.name, d.byte_offset))
        elif isinstance(d, ParameterInsert):
            runs.flush()
            req = areas[d.parameter_area_index]
            req.gpa = d.gpa
            req.what = f"parameter area {req.index} (inserted by header #{n})"
            plan.parameters.append(req)
        elif isinstance(d, RequiredMemory):
            plan.required_memory.append((d.gpa, d.number_of_bytes))
        elif isinstance(d, ErrorRange):
            if not d.size_bytes:   # the reader refuses these; a model built in code may still hold one
                raise LoadError(f"header #{n} (ERROR_RANGE): the range is empty")
            runs.flush()
            plan.zeros.append(ZeroRange(d.gpa, d.size_bytes, f"error range (header #{n})"))
        elif isinstance(d, VpContext):
            _vp_context(plan, d, n, native, vbs_skipped)
        # SNP_ID_BLOCK and VBS_MEASUREMENT describe attestation; nothing to do without isolation.
    runs.flush()
    for a in areas.values():
        if a.gpa is None and a.usages:
            plan.notes.append(f"parameter area {a.index} is filled but never inserted")
    if vbs_skipped:
        plan.notes.append(f"VP contexts for VTL {sorted(vbs_skipped)} ignored: pyvmm runs the guest as VTL0")
    if 0 not in plan.vps and native and any(w.gpa <= RESET_VECTOR < w.end for w in plan.writes):
        # QEMU (target/i386/igvm.c qigvm_x86_bsp_reset) leaves a native file's BSP alone without a context:
        # firmware pages ending at 4 GiB then start at their reset vector, as with -bios.
        plan.vps[0] = VpState()
        plan.notes.append(f"no VP context: VP 0 starts in the x86 reset state at {RESET_VECTOR:#x}")
    if 0 not in plan.vps:
        extra = f" (the file only has contexts for VTL {sorted(vbs_skipped)})" if vbs_skipped else ""
        if native and not extra:
            extra = f" and no page at the reset vector {RESET_VECTOR:#x}"
        raise LoadError(f"the file has no {platform.platform_type.name} VP context for VP 0, the boot processor"
                        f"{extra}")
    return plan


def _vp_context(plan: LoadPlan, d: m.VpContext, n: int, native: bool, vbs_skipped: set[int]) -> None:
    if d.vp_index in plan.vps:
        raise LoadError(f"header #{n} (VP_CONTEXT): a second context for VP {d.vp_index}")
    try:
        if native:
            plan.vps[d.vp_index] = native_context_to_state(parse_native_context(d.data))
            return
        regs = parse_vbs_context(d.data)
    except IgvmError as e:
        raise LoadError(f"header #{n} (VP_CONTEXT): {e}") from None
    vtl = regs[0].vtl
    if vtl != 0:
        vbs_skipped.add(vtl)
        return
    plan.vps[d.vp_index] = vbs_to_state(regs)

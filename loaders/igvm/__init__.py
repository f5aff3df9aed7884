"""IGVM: a strict reader, a deterministic writer, and the model between them (no KVM here).

Names are imported lazily (PEP 562) so the launch path, which only reads, does not pay for the writer and
builder at start-up.
"""

from ..lazy import lazy_getattr

_WHERE = {
    "IgvmBuilder": "builder", "read_igvm": "reader", "write_igvm": "writer",
    **{n: "constants" for n in ("Architecture", "HeaderType", "MemoryMapEntryType", "PageDataFlags", "PageDataType",
                                "Platform", "RelocationFlags")},
    **{n: "model" for n in ("CcaPolicy", "CorimDocument", "CorimSignature", "ErrorRange", "GuestPolicy", "IgvmFile",
                            "PageData", "PageTableRelocation", "ParameterArea", "ParameterInsert", "ParameterUsage",
                            "RelocatableRegion", "RequiredMemory", "SnpIdBlock", "SupportedPlatform",
                            "VbsMeasurement", "VpContext")},
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE, globals())

"""ACPI tables built from plain machine parameters (no KVM): MADT, SRAT, SLIT, PPTT, and a parser for them.

Names are imported lazily (PEP 562): a launch builds tables and never needs the parser.
"""

from ..lazy import lazy_getattr

_WHERE = {
    **{n: "tables" for n in ("AcpiHeaderIds", "build_dsdt", "build_facs", "build_fadt",
                             "build_madt", "build_pptt", "build_rsdp", "build_rsdp_v1", "build_rsdt", "build_slit",
                             "build_srat", "build_xsdt", "checksum_ok", "finish_table")},
    "AcpiTable": "parse", "parse_table": "parse",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE, globals())

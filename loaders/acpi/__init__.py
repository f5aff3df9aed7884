"""ACPI tables built from plain machine parameters (no KVM): MADT, SRAT, SLIT, PPTT, and a parser for them."""

from .tables import (IOAPIC_ADDR, LAPIC_ADDR, AcpiHeaderIds, build_dsdt, build_facs, build_fadt, build_madt,
                     build_pptt, build_rsdp, build_rsdp_v1, build_rsdt, build_slit, build_srat, build_xsdt,
                     checksum_ok, finish_table)
from .parse import AcpiTable, parse_table

__all__ = ["IOAPIC_ADDR", "LAPIC_ADDR", "AcpiHeaderIds", "AcpiTable", "build_dsdt", "build_facs", "build_fadt",
           "build_madt", "build_pptt", "build_rsdp", "build_rsdp_v1", "build_rsdt", "build_slit", "build_srat",
           "build_xsdt", "checksum_ok", "finish_table", "parse_table"]

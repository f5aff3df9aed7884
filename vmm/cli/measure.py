"""`pyvmm igvm measure FILE`: the launch measurement an SEV-SNP or TDX host would report for an IGVM file."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import UsageError


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the IGVM file")
    p.add_argument("--igvm-platform", metavar="sev_snp|tdx", choices=["sev_snp", "tdx"],
                   help="which platform's measurement (default: sev_snp if the file declares it, else tdx)")
    p.add_argument("-p", "--processors", default="1", metavar="N",
                   help="vCPU count: SEV-SNP measures one VMSA page per vCPU (default 1)")
    p.add_argument("--native-zero", action="store_true",
                   help="SEV-SNP: measure pages without data as ZERO pages (igvmmeasure --native-zero) "
                        "instead of NORMAL pages of zeroes (what QEMU/KVM and igvm-tooling do)")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema pyvmm-igvm-measure/1)")


def id_block_verdict(res) -> str | None:
    """'matches' / 'differs, it says HEX' for a file with an SNP_ID_BLOCK, else None."""
    if res.id_block_ld is None:
        return None
    if res.id_block_ld == res.digest:
        return "matches"
    return f"differs, it says {res.id_block_ld.hex()}"


def measurement_lines(res) -> list[str]:
    """The measurement as text lines (shared with `pyvmm igvm plan` for SNP/TDX launches)."""
    name = "launch digest" if res.platform.name == "SEV_SNP" else "MRTD"
    lines = [f"{res.platform.name} {name} ({res.vcpus} vCPU{'s' if res.vcpus != 1 else ''}): {res.hex}",
             "records: " + ", ".join(f"{k} {v}" for k, v in res.counts.items())]
    verdict = id_block_verdict(res)
    if verdict is not None:
        lines.append(f"id block: {verdict}")
    lines += [f"note: {n}" for n in res.notes]
    return lines


def cmd_measure(args: argparse.Namespace) -> int:
    from loaders.errors import IgvmError
    from loaders.igvm import read_igvm
    from loaders.igvm.measure import measure
    from ..files import read_file
    from ..sizes import parse_processors
    try:
        cpus = parse_processors(args.processors)
    except ValueError as e:
        raise UsageError(str(e)) from None
    raw = read_file(args.file)
    try:
        res = measure(read_igvm(raw), args.igvm_platform, cpus, args.native_zero)
    except IgvmError as e:
        raise IgvmError(f"{args.file}: {e}") from None
    if args.json:
        out = {"schema": "pyvmm-igvm-measure/1", "platform": res.platform.name.lower(), "vcpus": res.vcpus,
               "digest": res.hex, "records": res.counts,
               "id_block": None if res.id_block_ld is None else {"ld": res.id_block_ld.hex(),
                                                                 "matches": res.id_block_ld == res.digest},
               "notes": res.notes}
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    sys.stdout.write("\n".join(measurement_lines(res)) + "\n")
    return 0

"""`pyvmm igvm ...`: subcommands that inspect and build IGVM files. Each subcommand is one function."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, NoReturn

from ..files import linux_igvm_from_files, read_file
from .errors import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see 'pyvmm igvm --help')")


def write_output(path: str, data: bytes) -> None:
    """Write a built file and say so; a one-line error if it cannot be written."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    print(f"wrote {path}: {len(data):,} bytes")


def cmd_dump(args: argparse.Namespace) -> int:
    from loaders.igvm import read_igvm
    from loaders.igvm.describe import describe
    from loaders.errors import IgvmError
    raw = read_file(args.file)
    try:
        info = describe(read_igvm(raw), raw)
    except IgvmError as e:
        raise IgvmError(f"{args.file}: {e}") from None
    if args.json:
        json.dump(info, sys.stdout, indent=1)
        print()
        return 0
    _print_dump(info, args.file)
    return 0


def _fields(d: dict) -> str:
    skip = {"index", "offset", "type", "registers"}
    parts = []
    for k, v in d.items():
        if k in skip:
            continue
        if isinstance(v, dict):
            v = f"{v['size']} bytes sha256:{v['sha256'][:12]}"
        elif isinstance(v, int) and not isinstance(v, bool) and k not in ("vp_index", "version", "highest_vtl",
                                                                            "parameter_area_index"):
            v = hex(v)
        parts.append(f"{k}={v}")
    if "registers" in d:
        regs = d["registers"]
        show = [n for n in ("rip", "rsp", "rsi", "r12", "cr0", "cr3", "cr4", "efer", "gdtr_base", "code_selector",
                            "code_attributes", "cs", "gdtr") if n in regs]
        parts.append("regs: " + " ".join(f"{n}={regs[n]:#x}" for n in show))
    return "  ".join(parts)


def _print_dump(info: dict, path: str) -> None:
    from rich.console import Console
    from rich.table import Table
    con = Console()
    fi = info["file"]
    con.print(f"[bold]{path}[/]: IGVM v{fi['version']} {fi['architecture']}, {fi['size']:,} bytes, "
              f"checksum {fi['checksum']:#010x}")
    t = Table(show_lines=False)
    for col in ("#", "offset", "header", "fields"):
        t.add_column(col, overflow="fold")
    rows = [*info["platforms"], *info["initialization"], *info["directives"]]
    ranges = info["page_ranges"]
    for r in rows:
        t.add_row(str(r["index"]), f"{r['offset']:#x}" if r["offset"] is not None else "", r["type"], _fields(r))
    con.print(t)
    if ranges:
        pt = Table(title="page data (runs of contiguous pages)")
        for col in ("GPA range", "pages", "zero", "mask", "flags", "type"):
            pt.add_column(col)
        for r in ranges:
            pt.add_row(f"{r['first_gpa']:#x}-{r['end_gpa']:#x}", str(r["pages"]), str(r["zero_pages"]),
                       f"{r['compatibility_mask']:#x}", f"{r['flags']:#x}", r["data_type"])
        con.print(pt)
    tot = info["totals"]
    con.print("totals: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in tot.items()))


SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def subcommand(name: str, help_text: str):
    """Register a subcommand: the decorated function adds its arguments; `run` executes it."""
    def wrap(add_args):
        def register(run):
            SUBCOMMANDS[name] = (help_text, add_args, run)
            return run
        return register
    return wrap


def _dump_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the IGVM file")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema pyvmm-igvm-dump/1)")


SUBCOMMANDS["dump"] = ("print every header of an IGVM file", _dump_args, cmd_dump)


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="the IGVM file (or use --igvm SPEC)")
    p.add_argument("--igvm", metavar="SPEC", help="as for pyvmm: FILE, path=FILE or type=uefi|linux,path=FILE")
    _plan_options(p)
    p.add_argument("--map", action="store_true",
                   help="draw guest physical memory instead: RAM, MMIO hole, page data, parameters, stack, entry")


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--memory", default="1G", metavar="SIZE", help="guest RAM (default 1G)")
    p.add_argument("-p", "--processors", default="1", metavar="N", help="vCPU count (default 1)")
    p.add_argument("--cmdline", metavar="TEXT", help="command line for COMMAND_LINE parameters")
    p.add_argument("--igvm-platform", metavar="NAME", choices=["native", "vsm_isolation", "sev_snp", "tdx"],
                   help="which platform to plan for (default: native if present); sev_snp and tdx also show "
                        "the launch measurement")


def _prepare(spec, args: argparse.Namespace):
    """The checked plan for one SPEC (FILE, path=FILE or type=...,path=FILE) with the plan options in args."""
    from ..igvm_source import prepare_igvm
    from ..sizes import parse_processors, parse_size
    try:
        memory, cpus = parse_size(args.memory), parse_processors(args.processors)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return prepare_igvm(spec, memory, cpus, args.cmdline, args.igvm_platform)


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the load plan a launch with these options would apply: deterministic, diffable text (or a map)."""
    from ..igvm_source import IgvmSpec
    from ..plan_text import plan_lines
    from .options import parse_igvm_spec
    if (args.file is None) == (args.igvm is None):
        raise UsageError("give the IGVM file either as FILE or as --igvm SPEC")
    spec = IgvmSpec(args.file) if args.file is not None else parse_igvm_spec(args.igvm)
    prepared = _prepare(spec, args)
    if args.map:
        from rich.console import Console
        from ..plan_map import render_map
        render_map(prepared, Console(highlight=False))
        return 0
    lines = plan_lines(prepared)
    if args.igvm_platform in ("sev_snp", "tdx"):
        from loaders.igvm.measure import measure
        from .measure import measurement_lines
        lines += measurement_lines(measure(prepared.file, args.igvm_platform, prepared.host.cpus))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


SUBCOMMANDS["plan"] = ("print the load plan pyvmm would apply (deterministic text for regression diffs)",
                       _plan_args, cmd_plan)


def _measure_args(p: argparse.ArgumentParser) -> None:
    from .measure import add_args
    add_args(p)


def _cmd_measure(args: argparse.Namespace) -> int:
    from .measure import cmd_measure
    return cmd_measure(args)


SUBCOMMANDS["measure"] = ("the SEV-SNP launch digest or TDX MRTD a confidential host would measure",
                          _measure_args, _cmd_measure)


def _diff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="the first IGVM: FILE, path=FILE or type=uefi|linux,path=FILE")
    p.add_argument("b", metavar="B", help="the second, the same way")
    _plan_options(p)


def cmd_diff(args: argparse.Namespace) -> int:
    """Print what differs between two files' load plans; 0 when equal, 1 when they differ (2: bad input)."""
    from ..plan_diff import compared, data_differences, unified
    from ..plan_text import plan_lines
    from .options import parse_igvm_spec
    a, b = (_prepare(parse_igvm_spec(x), args) for x in (args.a, args.b))
    la, lb = plan_lines(a), plan_lines(b)
    if compared(la) == compared(lb):
        print(f"the load plans of {args.a} and {args.b} are equal")
        return 0
    out = unified(la, lb, args.a, args.b)
    detail = data_differences(a.plan, b.plan)
    if detail:
        out += ["", "bytes of writes at the same address:"] + detail
    sys.stdout.write("\n".join(out) + "\n")
    return 1


SUBCOMMANDS["diff"] = ("what differs between two IGVM files' load plans (exit 0 equal, 1 differ, 2 bad input)",
                       _diff_args, cmd_diff)


def _build_uefi_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--firmware", required=True, metavar="IMAGE", help="a 6 MiB UEFI image (mu_msvm layout)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the IGVM file to write")
    p.add_argument("--native", action="store_true", help="a NATIVE v2 file instead of igvmfilegen's VSM v1")
    p.add_argument("--no-r12", action="store_true", help="leave R12 out of the VP context (older igvmfilegen)")


def cmd_build_uefi(args: argparse.Namespace) -> int:
    """Package a UEFI firmware image as igvmfilegen's non-isolated UEFI manifest does."""
    from loaders.errors import LoadError
    from loaders.uefi.firmware import build_uefi_igvm
    image = read_file(args.firmware)
    try:
        out = build_uefi_igvm(image, native=args.native, r12=not args.no_r12)
    except LoadError as e:
        raise LoadError(f"{args.firmware}: {e}") from None
    write_output(args.output, out)
    return 0


SUBCOMMANDS["build-uefi"] = ("package a 6 MiB UEFI firmware image as a non-isolated UEFI IGVM",
                             _build_uefi_args, cmd_build_uefi)


def _build_linux_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel", required=True, metavar="K", help="bzImage (64-bit entry) or ELF vmlinux")
    p.add_argument("--initrd", metavar="I", help="initial ramdisk, placed 2 MiB-aligned after the kernel")
    p.add_argument("--cmdline", default="", metavar="C", help="default command line (a launch --cmdline replaces it)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the IGVM file to write")


def cmd_build_linux(args: argparse.Namespace) -> int:
    """Package a Linux kernel (and initrd) as a NATIVE v2 direct-boot IGVM."""
    write_output(args.output, linux_igvm_from_files(args.kernel, args.initrd, args.cmdline))
    return 0


SUBCOMMANDS["build-linux"] = ("package a Linux kernel (bzImage or vmlinux) as a direct-boot IGVM",
                              _build_linux_args, cmd_build_linux)


def _build_rom_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rom", required=True, metavar="FILE", help="a PC firmware ROM such as OVMF.fd (64 KiB units, "
                                                                 "at most 16 MiB)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the IGVM file to write")


def cmd_build_rom(args: argparse.Namespace) -> int:
    """Package a -bios ROM as a NATIVE IGVM: pages ending at 4 GiB, no VP context (the reset vector runs)."""
    from loaders.firmware_rom import build_rom_igvm
    write_output(args.output, build_rom_igvm(bytes(read_file(args.rom)), args.rom))
    return 0


SUBCOMMANDS["build-rom"] = ("package a PC firmware ROM (e.g. OVMF.fd) as a NATIVE IGVM that starts at its reset "
                            "vector", _build_rom_args, cmd_build_rom)


def main(argv: list[str]) -> int:
    """Run one `pyvmm igvm` subcommand; errors propagate to vmm.cli.main, which prints them and picks the status."""
    p = _Parser(prog="pyvmm igvm", description="Inspect and build IGVM files.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_args, _) in SUBCOMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    args = p.parse_args(argv)
    if not args.command:
        raise UsageError("give a subcommand: " + ", ".join(SUBCOMMANDS))
    return SUBCOMMANDS[args.command][2](args)

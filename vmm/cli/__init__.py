"""The `pyvmm` command: argument parsing and dispatch; errors become one line and an exit status in .errors.

Exit status (vmm.status): guest debug-exit V -> (V << 1) | 1; power-off (or reset with --no-reboot) -> 0;
bad input -> 2; fatal guest/KVM error -> 3 (register dump on stderr); --timeout -> 124.

Only vmm/__main__.py and the `pyvmm` console script import this package; the machine core never does.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from .. import __version__
from .errors import UsageError, exit_status_for

EPILOG = ("Subcommands: 'pyvmm igvm dump|plan|diff|build-linux|build-uefi|build-rom ...' (see 'pyvmm igvm --help'). "
          "Exit status: guest debug-exit V on port 0xf4 -> (V<<1)|1; power-off -> 0; bad input -> 2; "
          "fatal guest or KVM error -> 3; --timeout -> 124.")

# The launch options, declared once: argparse is built from this table (for --help and every error), and
# quick_parse reads plain command lines with it without importing argparse (argparse, with gettext, locale
# and shutil, was a fifth of a launch's start-up).
# (flags, dest, action: "store" | "append" | "flag", default, choices, type, metavar, help, group)
OPTIONS: tuple[tuple[tuple[str, ...], str, str, object, tuple[str, ...] | None, type | None, str | None, str,
                     str | None], ...] = (
    (("--igvm",), "igvm", "store", None, None, None, "SPEC",
     "an IGVM file: FILE, path=FILE, or type=uefi|linux,path=FILE", "what to boot"),
    (("--igvm-platform",), "igvm_platform", "store", None, ("native", "vsm_isolation", "sev_snp", "tdx"), None, "NAME",
     "which of the file's platforms to launch: native or vsm_isolation (default: native if the file has it); "
     "sev_snp or tdx run that platform's directives as an ordinary, non-confidential guest for debugging",
     "what to boot"),
    (("--igvm-relocation",), "igvm_relocation", "store", "file", None, None, "file|auto|absolute=ADDR",
     "where relocatable IGVM images go; only 'file' (the file's own addresses) is supported", "what to boot"),
    (("--bios",), "bios", "store", None, None, None, "FILE",
     "a firmware ROM (e.g. OVMF.fd) mapped read-only to end at 4 GiB, as QEMU's -bios; the boot processor starts "
     "at the reset vector", "what to boot"),
    (("--kernel",), "kernel", "store", None, None, None, "FILE", "Linux bzImage or vmlinux for direct boot",
     "what to boot"),
    (("--initrd",), "initrd", "store", None, None, None, "FILE", "initial ramdisk for --kernel or type=linux",
     "what to boot"),
    (("-m", "--memory"), "memory", "store", "1G", None, None, "SIZE",
     "guest RAM: 256M, 2G, 2GB (plain numbers are MiB, as in QEMU; default 1G)", None),
    (("-p", "--processors"), "processors", "store", "1", None, None, "N", "vCPU count, 1..255 (default 1)", None),
    (("--cpu",), "cpu", "store", "host", None, None, "host[,-FEATURE|,+FEATURE...]",
     "CPUID features offered to the guest: host, minus or plus features named as in /proc/cpuinfo "
     "(e.g. host,-xsave,-popcnt); clearing one clears what depends on it", None),
    (("--cmdline",), "cmdline", "store", None, None, None, "TEXT", "kernel command line (replaces the file's default)",
     None),
    (("--serial",), "serial", "store", "stdio", None, None, "stdio|file:PATH|none",
     "where COM1 goes (default stdio)", None),
    (("--debugcon",), "debugcon", "store", None, None, None, "FILE",
     "write what the guest sends to port 0x402 (QEMU's -debugcon)", None),
    (("--fw-cfg",), "fw_cfg", "append", None, None, None, "name=opt/N,file=P|string=S",
     "add a fw_cfg file (repeatable)", None),
    (("--no-reboot",), "no_reboot", "flag", False, None, None, None,
     "end the run when the guest resets (status 0); a reset that applies a vmfwupdate request continues", None),
    (("--no-vmfwupdate",), "no_vmfwupdate", "flag", False, None, None, None,
     "leave out the etc/vmfwupdate fw_cfg file (a guest cannot hand pyvmm a new firmware)", None),
    (("--timeout",), "timeout", "store", None, None, float, "SECONDS", "stop the guest after SECONDS (status 124)",
     None),
    (("--trace",), "trace", "append", None, ("exits", "rip", "milestones"), None, None,
     "'exits': log unclaimed ports/MMIO once each, and at the end the exit counts and the writes KVM buffered "
     "instead of exiting; 'rip': sample each vCPU's RIP every "
     "20 ms and log where the guest spent its time; 'milestones': log when firmware reaches its reset vector, the "
     "PCI host bridge, fw_cfg, COM1 and the shell", None),
    (("--symbols",), "symbols", "store", None, None, None, "ELF",
     "name --trace rip samples from this ELF's symbol table (default: the --kernel file when it is an ELF vmlinux)",
     None),
)
_BY_FLAG = {flag: opt for opt in OPTIONS for flag in opt[0]}


def _parser():
    """The argparse parser for the launch options (with --help and --version), built from OPTIONS."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # one line, not argparse's usage block
            raise UsageError(f"{message} (see 'pyvmm --help')")

    p = Parser(prog="pyvmm", description="Launch IGVM files (UEFI or Linux payloads) on Linux KVM.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"pyvmm {__version__}")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for flags, dest, action, default, choices, typ, metavar, help_text, group in OPTIONS:
        where = p if group is None else groups.setdefault(group, p.add_argument_group(group))
        if action == "flag":
            where.add_argument(*flags, dest=dest, action="store_true", help=help_text)
            continue
        where.add_argument(*flags, dest=dest, action=action, default=[] if action == "append" else default,
                           choices=choices, type=typ, metavar=metavar, help=help_text)
    return p


def quick_parse(argv: list[str]) -> SimpleNamespace | None:
    """The launch options of a plain command line (each option spelled out, as `--opt VALUE`, `--opt=VALUE` or
    `-m VALUE`), as argparse would give them; None for anything else (--help, abbreviations, a value that starts
    with '-', a bad choice or number, a stray word), which then goes to argparse for its answer and its message."""
    values: dict[str, object] = {o[1]: [] if o[2] == "append" else o[3] for o in OPTIONS}
    i, n = 0, len(argv)
    while i < n:
        word = argv[i]
        flag, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = _BY_FLAG.get(flag)
        if opt is None:
            return None
        _, dest, action, _, choices, typ, _, _, _ = opt
        if action == "flag":
            if eq:
                return None
            values[dest] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= n:
                return None
            value = argv[i + 1]
            i += 1
        i += 1
        if value.startswith("-") or (choices is not None and value not in choices):
            return None
        if typ is not None:
            try:
                value = typ(value)
            except ValueError:
                return None
        if action == "append":
            values[dest].append(value)
        else:
            values[dest] = value
    return SimpleNamespace(**values)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["igvm"]:
            from .igvm import main as igvm_main
            return igvm_main(argv[1:])
        args = quick_parse(argv)
        if args is None:
            args = _parser().parse_args(argv)
        from .run import run_command
        return run_command(args)
    except (Exception, KeyboardInterrupt) as e:
        code = exit_status_for(e)
        if code is None:
            raise
        return code


def entry() -> None:
    """`pyvmm` and `python -m vmm`: main(), then leave at once. Once the guest has ended, nothing is left to do
    but the interpreter's own teardown (freeing every module and object), which took longer than running a
    small guest; the standard streams are flushed first, and every file pyvmm writes is unbuffered."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:               # started with that descriptor closed
            continue
        try:
            stream.flush()
        except (OSError, ValueError):    # a closed pipe: what a normal exit would report, status unchanged
            pass
    os._exit(code)

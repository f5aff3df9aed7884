"""The `pyvmm` command: argument parsing and dispatch; errors become one line and an exit status in .errors.

Exit status (vmm.status): guest debug-exit V -> (V << 1) | 1; power-off (or reset with --no-reboot) -> 0;
bad input -> 2; fatal guest/KVM error -> 3 (register dump on stderr); --timeout -> 124.

Only vmm/__main__.py and the `pyvmm` console script import this package; the machine core never does.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .. import __version__
from .errors import UsageError, exit_status_for


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(f"{message} (see 'pyvmm --help')")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyvmm", description="Launch IGVM files (UEFI or Linux payloads) on Linux KVM.",
                epilog="Subcommands: 'pyvmm igvm dump|plan|diff|build-linux|build-uefi|build-rom ...' (see 'pyvmm igvm --help'). "
                       "Exit status: guest debug-exit V on port 0xf4 -> (V<<1)|1; power-off -> 0; bad input -> 2; "
                       "fatal guest or KVM error -> 3; --timeout -> 124.")
    p.add_argument("--version", action="version", version=f"pyvmm {__version__}")
    src = p.add_argument_group("what to boot")
    src.add_argument("--igvm", metavar="SPEC",
                     help="an IGVM file: FILE, path=FILE, or type=uefi|linux,path=FILE")
    src.add_argument("--igvm-platform", metavar="NAME", choices=["native", "vsm_isolation", "sev_snp", "tdx"],
                     help="which of the file's platforms to launch: native or vsm_isolation (default: native if "
                          "the file has it); sev_snp or tdx run that platform's directives as an ordinary, "
                          "non-confidential guest for debugging")
    src.add_argument("--igvm-relocation", default="file", metavar="file|auto|absolute=ADDR",
                     help="where relocatable IGVM images go; only 'file' (the file's own addresses) is supported")
    src.add_argument("--bios", metavar="FILE",
                     help="a firmware ROM (e.g. OVMF.fd) mapped read-only to end at 4 GiB, as QEMU's -bios; the "
                          "boot processor starts at the reset vector")
    src.add_argument("--kernel", metavar="FILE", help="Linux bzImage or vmlinux for direct boot")
    src.add_argument("--initrd", metavar="FILE", help="initial ramdisk for --kernel or type=linux")
    p.add_argument("-m", "--memory", default="1G", metavar="SIZE",
                   help="guest RAM: 256M, 2G, 2GB (plain numbers are MiB, as in QEMU; default 1G)")
    p.add_argument("-p", "--processors", default="1", metavar="N", help="vCPU count, 1..255 (default 1)")
    p.add_argument("--cpu", default="host", metavar="host[,-FEATURE|,+FEATURE...]",
                   help="CPUID features offered to the guest: host, minus or plus features named as in "
                        "/proc/cpuinfo (e.g. host,-xsave,-popcnt); clearing one clears what depends on it")
    p.add_argument("--cmdline", metavar="TEXT", help="kernel command line (replaces the file's default)")
    p.add_argument("--serial", default="stdio", metavar="stdio|file:PATH|none", help="where COM1 goes (default stdio)")
    p.add_argument("--debugcon", metavar="FILE", help="write what the guest sends to port 0x402 (QEMU's -debugcon)")
    p.add_argument("--fw-cfg", action="append", default=[], metavar="name=opt/N,file=P|string=S",
                   help="add a fw_cfg file (repeatable)")
    p.add_argument("--no-reboot", action="store_true", help="end the run when the guest resets (status 0); a reset "
                                                            "that applies a vmfwupdate request continues")
    p.add_argument("--no-vmfwupdate", action="store_true",
                   help="leave out the etc/vmfwupdate fw_cfg file (a guest cannot hand pyvmm a new firmware)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="stop the guest after SECONDS (status 124)")
    p.add_argument("--trace", action="append", default=[], choices=["exits", "rip", "milestones"],
                   help="'exits': log unclaimed ports/MMIO once each and exit counts at the end; 'rip': sample "
                        "each vCPU's RIP every 20 ms and log where the guest spent its time; 'milestones': log "
                        "when firmware reaches its reset vector, the PCI host bridge, fw_cfg, COM1 and the shell")
    p.add_argument("--symbols", metavar="ELF", help="name --trace rip samples from this ELF's symbol table "
                                                    "(default: the --kernel file when it is an ELF vmlinux)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["igvm"]:
            from .igvm import main as igvm_main
            return igvm_main(argv[1:])
        args = _parser().parse_args(argv)
        from .run import run_command
        return run_command(args)
    except (Exception, KeyboardInterrupt) as e:
        code = exit_status_for(e)
        if code is None:
            raise
        return code

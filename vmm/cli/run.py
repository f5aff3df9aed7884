"""`pyvmm --igvm/--kernel ...`: turn parsed arguments into a machine config and a plan source, then launch."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from kvm import kvm_usable

from .. import status
from ..sizes import parse_processors, parse_size
from .errors import UsageError

# The parsed options: vmm.cli.quick_parse gives a SimpleNamespace, argparse a Namespace with the same attributes.
Args = SimpleNamespace


def _check_serial(spec: str) -> None:
    """--serial is stdio, file:PATH or none; checked before anything is read or opened."""
    if spec not in ("stdio", "none") and not (spec.startswith("file:") and len(spec) > 5):
        raise UsageError(f"--serial {spec!r}: use stdio, file:PATH or none")


def _serial(spec: str):
    """Serial sink from a checked --serial: (write callable or None, whether stdin is wired to COM1)."""
    from ..serial_sink import guarded, stdout_sink
    if spec == "stdio":
        return stdout_sink(), True
    if spec == "none":
        return None, False
    try:
        f = open(spec[5:], "ab", buffering=0)
    except OSError as e:
        raise UsageError(f"--serial {spec}: cannot open: {e.strerror}") from None
    return guarded(f.write, spec[5:]), False


def _symbols(args: Args):
    """Symbols for --trace rip: --symbols FILE, else the --kernel file if it is an ELF; None without either."""
    from loaders.elf_symbols import elf_symbols
    path = args.symbols or args.kernel
    if path is None:
        return None
    from loaders.errors import LoadError
    from ..files import read_file
    try:
        data = read_file(path)
    except LoadError as e:
        raise UsageError(f"--symbols {path}: {e}") from None
    symbols = elf_symbols(data)
    if args.symbols and not len(symbols):
        raise UsageError(f"--symbols {path}: no ELF symbol table in this file")
    return symbols


def run_command(args: Args) -> int:
    """Check every option and input file, then KVM, then launch: bad input gives its own one-line error (status
    2) on any host, with or without /dev/kvm (PYVMM_KVM_DEVICE names another device node, for tests)."""
    from ..cpu_model import parse_cpu
    from ..machine import MachineConfig
    from .options import user_files
    try:
        memory = parse_size(args.memory)
        cpus = parse_processors(args.processors)
        cpu = parse_cpu(args.cpu)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be a positive number of seconds")
    if not args.igvm and not args.kernel and not args.bios:
        raise UsageError("nothing to boot: give --igvm FILE, --kernel FILE or --bios FILE")
    if args.igvm and args.kernel:
        raise UsageError("--igvm and --kernel are exclusive: give one")
    if args.igvm and args.bios:
        raise UsageError("--igvm and --bios are exclusive: a firmware IGVM carries its own ROM (igvm build-rom)")
    _check_serial(args.serial)
    firmware = None
    if args.bios:
        from ..firmware import read_rom
        firmware = read_rom(args.bios)
    files = user_files(args.fw_cfg)
    source, window = make_source(args, memory, cpus)      # validates files before any VM exists
    symbols = _symbols(args) if "rip" in args.trace else None
    fw_cfg = fw_cfg_for(args, memory, cpus, files)
    out, interactive = _serial(args.serial)
    debugcon = _debugcon(args.debugcon)
    reason = kvm_usable()                         # last: nothing above needs KVM
    if reason is not None:
        raise UsageError(f"cannot use KVM: {reason}")
    config = MachineConfig(memory=memory, cpus=cpus, serial_out=out, trace=frozenset(args.trace), cpu=cpu,
                           symbols=symbols, fw_cfg=fw_cfg, vmfwupdate=not args.no_vmfwupdate, firmware=firmware,
                           firmware_window=window, debugcon=debugcon)
    if "milestones" in args.trace:
        from ..milestones import Milestones
        config.milestones = Milestones(config.log)
    return execute(config, source, args, interactive)


def _debugcon(path: str | None):
    """--debugcon FILE: port 0x402's bytes appended to FILE; None without the option."""
    if path is None:
        return None
    try:
        return open(path, "ab", buffering=0).write
    except OSError as e:
        raise UsageError(f"--debugcon {path}: cannot open: {e.strerror}") from None


def make_source(args: Args, memory: int, cpus: int):
    """(the plan factory for the boot source named on the command line, the firmware window an IGVM needs);
    UsageError/LoadError for bad input."""
    from ..igvm_source import IgvmSpec, prepare_igvm
    from .options import check_relocation, parse_igvm_spec
    if args.bios:                                  # firmware from the ROM; a --kernel goes to it through fw_cfg
        from loaders.plan import LoadPlan, VpState
        return (lambda machine: LoadPlan(vps={0: VpState()})), 0
    if args.kernel:
        from ..files import linux_igvm_from_files
        raw = linux_igvm_from_files(args.kernel, args.initrd, args.cmdline or "")
        prepared = prepare_igvm(IgvmSpec(args.kernel, "linux"), memory, cpus, None, None, raw=raw)
        plan = prepared.plan
        return (lambda machine: plan), 0
    if args.initrd:
        raise UsageError("--initrd goes with --kernel (a type=linux IGVM carries its own initrd)")
    spec = parse_igvm_spec(args.igvm)
    check_relocation(spec, args.igvm_relocation)
    prepared = prepare_igvm(spec, memory, cpus, args.cmdline, args.igvm_platform)
    plan = prepared.plan
    if args.igvm_platform in ("sev_snp", "tdx"):
        from loaders.igvm.cc_launch import NO_CONFIDENTIALITY
        print(NO_CONFIDENTIALITY[prepared.platform.platform_type.name], file=sys.stderr)
    return (lambda machine: plan), prepared.firmware_window


def fw_cfg_for(args: Args, memory: int, cpus: int, files: tuple):
    """The machine's fw_cfg items: the fixed set, QEMU's kernel items for --kernel, the user's files."""
    from ..files import read_file
    from ..fw_cfg import fw_cfg_items, linux_boot_items
    kernel_keys, kernel_files = {}, ()
    if args.kernel:
        initrd = read_file(args.initrd) if args.initrd else None
        kernel_keys, kernel_files = linux_boot_items(read_file(args.kernel), initrd, args.cmdline or "", memory)
    try:
        return fw_cfg_items(memory, cpus, files, kernel_keys, kernel_files, vmfwupdate=not args.no_vmfwupdate)
    except ValueError as e:
        raise UsageError(f"--fw-cfg: {e}") from None


def execute(config, source, args: Args, interactive: bool) -> int:
    """Launch with relaunch-on-reset, stdin wired to COM1, and the result mapped to an exit status."""
    from ..console import SerialFeed, StdinPump
    from ..launch import launch
    from .signals import StopSignals
    from ..machine import Outcome

    feed = SerialFeed()
    pump = None
    stops = StopSignals([None])

    def on_machine(machine) -> None:
        feed.attach(machine)
        stops.on_machine(machine)

    if interactive:
        pump = StdinPump(feed=feed.feed, quit=lambda: feed.machine and feed.machine.request_stop(
            Outcome.QUIT, status.OK, "quit (ctrl-a x)"))
        pump.start()
    try:
        stops.install()
        result = launch(config, source, no_reboot=args.no_reboot, timeout=args.timeout, on_machine=on_machine)
    finally:
        stops.uninstall()
        if pump:
            pump.restore()
    if stops.signal_line:
        print(stops.signal_line, file=sys.stderr)
    if result.outcome in (Outcome.FATAL, Outcome.TIMEOUT) or (result.message and "exits" in config.trace):
        print(f"pyvmm: {result.message}", file=sys.stderr)
    elif result.outcome is Outcome.RESET and result.message:
        print(f"pyvmm: {result.message.splitlines()[0]}", file=sys.stderr)
    return result.status

"""An IGVM file (and its launch type) turned into a filled, checked plan.

Everything is validated before a VM exists, so bad input costs no KVM set-up and always ends with one line.
The command line's `--igvm SPEC` text is parsed in vmm.cli.options.
"""

from __future__ import annotations

from loaders.record import record

from loaders.errors import LoadError

from .memory import MMIO_HOLE_END, MMIO_HOLE_START

UEFI_BLOB_MMIO = ((MMIO_HOLE_START, MMIO_HOLE_END - MMIO_HOLE_START), (MMIO_HOLE_END, 0))   # the blob's two gaps


@record(frozen=True)
class IgvmSpec:
    path: str
    type: str | None = None      # None: a generic IGVM (the legacy `--igvm FILE` form or `path=FILE` alone)


@record
class PreparedIgvm:
    path: str
    file: object          # loaders.igvm.IgvmFile
    platform: object      # loaders.igvm.SupportedPlatform
    plan: object          # loaders.plan.LoadPlan, parameters filled and checked against the machine's RAM
    host: object          # loaders.igvm.parameters.HostInfo
    firmware_window: int = 0   # bytes of firmware window ending at 4 GiB the file's pages need (vmm.firmware)

    def targets(self) -> list[tuple[int, int]]:
        """Where the plan may write: the machine's RAM, the firmware window and a TDX image's RAM below 4 GiB."""
        from .firmware import load_targets
        from .pc_layout import PC
        return load_targets(self.host.ram, self.firmware_window, self.plan.top_ram, PC.low_rom_alias)


def prepare_igvm(spec: IgvmSpec, memory: int, cpus: int, cmdline: str | None = None,
                 platform: str | None = None, raw: bytes | None = None) -> PreparedIgvm:
    """Read, validate, plan, fill and check; LoadError naming the file for anything wrong with it."""
    from loaders.igvm import read_igvm
    from loaders.igvm.load import choose_platform, igvm_plan
    from loaders.igvm.parameters import fill_parameters

    from .firmware import load_targets, window_for
    from .pc_layout import PC
    from .host import host_info
    from .files import read_file
    if raw is None:
        raw = read_file(spec.path, map_big=True)
    try:
        f = read_igvm(raw)
        if platform in ("sev_snp", "tdx"):
            from loaders.igvm.cc_launch import confidential_plan
            plan, chosen = confidential_plan(f, platform, cpus)
        else:
            chosen = choose_platform(f, platform)
            plan = igvm_plan(f, chosen)
        host = host_info(memory, cpus, cmdline)
        window = 0 if plan.top_ram else window_for([(start, end) for start, end, _ in plan.ranges()])
        # every claimed size against the machine's RAM (and a TDX image's RAM below 4 GiB, which is no ROM: no
        # window then), before anything is filled
        plan.check(load_targets(host.ram, window, plan.top_ram, PC.low_rom_alias))
        fill_parameters(plan, host)
        if spec.type == "uefi":
            from loaders.uefi.typed import apply_uefi
            apply_uefi(plan, chosen.platform_type, host, UEFI_BLOB_MMIO)
        elif spec.type == "linux":
            from loaders.linux.typed import apply_linux
            apply_linux(plan, host, PC)
    except LoadError as e:
        raise LoadError(f"{spec.path}: {e}") from None
    return PreparedIgvm(spec.path, f, chosen, plan, host, window)

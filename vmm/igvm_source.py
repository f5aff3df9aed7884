"""`--igvm SPEC`: parse the spec (FILE, path=FILE, type=uefi|linux,path=FILE) and turn the file into a filled plan.

Everything is validated before a VM exists, so bad input costs no KVM set-up and always ends with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from loaders.errors import LoadError

from .cli import UsageError

IGVM_KEYS = ("path", "type")
IGVM_TYPES = ("uefi", "linux")


@dataclass(frozen=True)
class IgvmSpec:
    path: str
    type: str | None = None      # None: a generic IGVM (the legacy `--igvm FILE` form or `path=FILE` alone)


def parse_igvm_spec(text: str) -> IgvmSpec:
    """An existing file name is taken as is; otherwise key=value pairs separated by commas."""
    if not text:
        raise UsageError("--igvm needs a file: --igvm FILE or --igvm type=uefi,path=FILE")
    if "=" not in text or os.path.exists(text):
        return IgvmSpec(text)
    values: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            raise UsageError(f"--igvm {text!r}: {part!r} is not key=value (keys: {', '.join(IGVM_KEYS)})")
        if key not in IGVM_KEYS:
            raise UsageError(f"--igvm {text!r}: unknown key {key!r} (keys: {', '.join(IGVM_KEYS)})")
        if key in values:
            raise UsageError(f"--igvm {text!r}: {key}= given twice")
        values[key] = value
    if not values.get("path"):
        raise UsageError(f"--igvm {text!r}: missing path=FILE")
    typ = values.get("type")
    if typ is not None and typ not in IGVM_TYPES:
        raise UsageError(f"--igvm {text!r}: unknown type {typ!r} (types: {', '.join(IGVM_TYPES)})")
    return IgvmSpec(values["path"], typ)


def check_relocation(spec: IgvmSpec, relocation: str) -> None:
    """--igvm-relocation: only the file's own addresses are supported; type=uefi forbids anything else outright."""
    if relocation in ("file", "disable"):
        return
    if not (relocation == "auto" or relocation.startswith(("auto=", "absolute="))):
        raise UsageError(f"--igvm-relocation {relocation!r}: use file, auto or absolute=ADDR")
    if spec.type == "uefi":
        raise UsageError(f"--igvm type=uefi loads the firmware at the file's addresses; --igvm-relocation "
                         f"{relocation} cannot be combined with it (use --igvm-relocation file)")
    raise UsageError(f"--igvm-relocation {relocation}: relocation is not supported yet; only 'file' is")


@dataclass
class PreparedIgvm:
    path: str
    file: object          # loaders.igvm.IgvmFile
    platform: object      # loaders.igvm.SupportedPlatform
    plan: object          # loaders.plan.LoadPlan, parameters filled and checked against the machine's RAM
    host: object          # loaders.igvm.parameters.HostInfo


def prepare_igvm(spec: IgvmSpec, memory: int, cpus: int, cmdline: str | None = None,
                 platform: str | None = None, raw: bytes | None = None) -> PreparedIgvm:
    """Read, validate, plan, fill and check; LoadError naming the file for anything wrong with it."""
    from loaders.igvm import read_igvm
    from loaders.igvm.load import choose_platform, igvm_plan
    from loaders.igvm.parameters import fill_parameters

    from .host import host_info
    from .files import read_file
    if raw is None:
        raw = read_file(spec.path, map_big=True)
    try:
        f = read_igvm(raw)
        chosen = choose_platform(f, platform)
        plan = igvm_plan(f, chosen)
        host = host_info(memory, cpus, cmdline)
        plan.check(host.ram)             # every claimed size against the machine's RAM, before anything is filled
        fill_parameters(plan, host)
        if spec.type == "uefi":
            from .uefi import apply_uefi
            apply_uefi(plan, chosen.platform_type, host)
        elif spec.type == "linux":
            from .linux import apply_linux
            apply_linux(plan, host)
    except LoadError as e:
        raise LoadError(f"{spec.path}: {e}") from None
    return PreparedIgvm(spec.path, f, chosen, plan, host)

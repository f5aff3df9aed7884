"""Command-line values parsed into the machine core's terms: `--igvm SPEC`, `--igvm-relocation`, `--fw-cfg`.

Each parser raises UsageError with one line naming the option; none touches KVM, so every option is checked
before /dev/kvm is opened.
"""

from __future__ import annotations

import os

from chipset.fw_cfg import MAX_NAME, FwCfgFile
from loaders.errors import LoadError

from ..files import read_file
from ..igvm_source import IgvmSpec
from .errors import UsageError

IGVM_KEYS = ("path", "type")
IGVM_TYPES = ("uefi", "linux")


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



# --- --fw-cfg name=opt/NAME,file=PATH|string=TEXT -------------------------------------------------------------
def _split_options(text: str) -> list[str]:
    """QEMU option syntax: commas separate key=value pairs, a doubled comma is a literal one."""
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1:i + 2] == ",":
                cur.append(",")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


def parse_fw_cfg_option(text: str) -> FwCfgFile:
    """One --fw-cfg value as a file item; UsageError (one line) for anything QEMU would refuse."""
    where = f"--fw-cfg {text!r}"
    values: dict[str, str] = {}
    for part in _split_options(text):
        key, eq, value = part.partition("=")
        if not eq or key not in ("name", "file", "string"):
            raise UsageError(f"{where}: {part!r} is not name=, file= or string=")
        if key in values:
            raise UsageError(f"{where}: {key}= given twice")
        values[key] = value
    name = values.get("name", "")
    if not name:
        raise UsageError(f"{where}: missing name=opt/NAME")
    if bool(values.get("file")) == bool(values.get("string")):
        raise UsageError(f"{where}: give exactly one of file=PATH or string=TEXT")
    if len(name.encode()) > MAX_NAME:
        raise UsageError(f"{where}: name is {len(name.encode())} bytes, fw_cfg allows at most {MAX_NAME}")
    if not name.startswith("opt/") or len(name) == 4:
        raise UsageError(f"{where}: user fw_cfg names go under opt/ (e.g. name=opt/org.example/config)")
    if "string" in values:
        return FwCfgFile(name, values["string"].encode())
    try:
        return FwCfgFile(name, read_file(values["file"]))
    except LoadError as e:
        raise UsageError(f"{where}: {e}") from None


def user_files(options: list[str]) -> tuple[FwCfgFile, ...]:
    """Every --fw-cfg, duplicate names refused as QEMU does."""
    files = tuple(parse_fw_cfg_option(o) for o in options)
    seen: set[str] = set()
    for f in files:
        if f.name in seen:
            raise UsageError(f"--fw-cfg: duplicate fw_cfg file name: {f.name}")
        seen.add(f.name)
    return files

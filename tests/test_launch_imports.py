"""The modules a launch imports are a listed set, so that nothing slows start-up unnoticed.

A `pyvmm` launch spends most of its start-up importing; `typing`, `dataclasses` (with `inspect`), `argparse`
(with `gettext`, `locale`, `shutil`) and `re` once cost more than a small guest's whole run. Each test runs a
launch in a fresh `python -I -S` and fails naming every module that it imports beyond the interpreter's own
start-up and the lists below. A module that a launch truly needs goes on the list, in the same commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Standard-library modules a launch may import (beyond what the interpreter itself loads at start-up).
STDLIB = {
    "__future__", "_bisect", "_ctypes", "array", "_struct", "_weakrefset", "bisect", "collections", "collections.abc",
    "ctypes", "ctypes._endian", "errno", "functools", "itertools", "keyword", "mmap",
    "operator", "reprlib", "struct", "threading", "types", "zlib",
    "_collections", "_functools", "_operator",
    # what `site` imports on a normal start (these tests run without it, to leave out the host's .pth hooks)
    "_collections_abc", "_stat", "genericpath", "importlib._bootstrap", "importlib._bootstrap_external", "os",
    "os.path",
    "posixpath", "stat",
}
# pyvmm's own modules: everything from the command line to a guest's exit (--igvm).
PROJECT = {
    "chipset", "chipset.acpi_pm", "chipset.bus", "chipset.cmos", "chipset.debug_exit", "chipset.fw_cfg",
    "chipset.i440fx", "chipset.i8042", "chipset.misc_ports", "chipset.pci", "chipset.piix3", "chipset.piix4_pm",
    "chipset.ram", "chipset.uart16550", "chipset.vmfwupdate",
    "kvm", "kvm.coalesced", "kvm.errors", "kvm.ioctl", "kvm.mman", "kvm.system", "kvm.uapi", "kvm.vcpu", "kvm.vm",
    "loaders", "loaders.acpi", "loaders.acpi.table_loader", "loaders.acpi.tables", "loaders.elf_symbols",
    "loaders.errors", "loaders.firmware_rom", "loaders.igvm", "loaders.igvm.constants", "loaders.igvm.load",
    "loaders.igvm.directives", "loaders.igvm.model", "loaders.igvm.parameters", "loaders.igvm.reader", "loaders.igvm.structs",
    "loaders.igvm.vpcontext", "loaders.lazy", "loaders.linux", "loaders.linux.bootparams", "loaders.named",
    "loaders.pc", "loaders.plan", "loaders.record", "loaders.x86",
    "vmm", "vmm.cli", "vmm.cli.errors", "vmm.cli.options", "vmm.cli.run", "vmm.cli.signals", "vmm.console",
    "vmm.cpu_model", "vmm.files", "vmm.firmware", "vmm.fw_cfg", "vmm.host", "vmm.igvm_source", "vmm.launch",
    "vmm.gib_split", "vmm.lazy_pit", "vmm.machine", "vmm.memory", "vmm.pc_layout", "vmm.serial_sink", "vmm.sizes",
    "vmm.status", "vmm.vcpu_setup", "vmm.write_buffer",
    "vmm.vmfwupdate",
}

# Runs main(argv) in a bare interpreter and writes the modules it added to sys.modules, as JSON, to argv[1].
SCRIPT = """
import sys
sys.path.insert(0, sys.argv[2])
before = set(sys.modules)
from vmm.cli import main
status = main(sys.argv[3:])
added = sorted(set(sys.modules) - before)
import json
json.dump({"status": status, "added": added}, open(sys.argv[1], "w"))
"""

# A guest of four bytes: `mov $0, %al; out %al, $0xf4` (debug exit 0, status 1).
TINY_GUEST = b"\xb0\x00\xe6\xf4"


def launch_modules(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    from loaders.igvm.pack import pack_flat_image
    igvm = tmp_path / "tiny.igvm"
    igvm.write_bytes(pack_flat_image(TINY_GUEST))
    out = tmp_path / "modules.json"
    p = subprocess.run([sys.executable, "-I", "-S", "-c", SCRIPT, str(out), str(ROOT), "--igvm", str(igvm),
                        "-m", "64M", "--serial", "none"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **(env or {})})
    assert out.exists(), p.stderr[-2000:]
    result = json.loads(out.read_text())
    return result["status"], set(result["added"])


def unlisted(added: set[str], allowed: set[str]) -> list[str]:
    return sorted(added - allowed - STDLIB)


def test_the_plan_path_imports_only_listed_modules(tmp_path):
    status, added = launch_modules(tmp_path, {"PYVMM_KVM_DEVICE": str(tmp_path / "no-kvm")})
    assert status == 2                   # everything checked and planned, then "cannot use KVM"
    new = unlisted(added, PROJECT)
    assert not new, f"new modules on the launch path (list them here if a launch needs them): {new}"


def test_a_launch_imports_only_listed_modules(tmp_path, kvm_ok):
    status, added = launch_modules(tmp_path)
    assert status == 1                   # the guest's debug exit
    new = unlisted(added, PROJECT)
    assert not new, f"new modules on the launch path (list them here if a launch needs them): {new}"


@pytest.mark.parametrize("heavy", ["typing", "dataclasses", "inspect", "argparse", "re", "enum", "signal", "rich",
                                   "shutil", "locale", "gettext", "hashlib", "json", "tempfile", "pathlib"])
def test_the_lists_leave_out_the_heavy_modules(heavy):
    """The point of the lists: these cost milliseconds each and a launch has no use for them."""
    assert heavy not in STDLIB | PROJECT


def test_the_check_names_a_module_that_is_not_listed():
    assert unlisted({"vmm.cli", "typing", "json"}, PROJECT) == ["json", "typing"]

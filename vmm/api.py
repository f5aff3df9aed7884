"""pyvmm as a library: launch an IGVM file from Python (a pytest test, a script) and get its serial output.

This is the call a loader regression test makes: build a file, run it, assert on the status and the text.
"""

from __future__ import annotations

import os
import threading

from loaders.record import record

from .machine import MachineConfig, Outcome, RunResult
from .sizes import parse_size


@record
class GuestOutput:
    """What a run produced: the outcome, the exit status pyvmm would return, and everything sent to COM1."""
    result: RunResult
    serial: bytes

    @property
    def status(self) -> int:
        return self.result.status

    @property
    def outcome(self) -> Outcome:
        return self.result.outcome

    @property
    def text(self) -> str:
        return self.serial.decode(errors="replace")


def _memory(memory: int | str) -> int:
    from loaders.errors import LoadError
    if isinstance(memory, int):
        return memory
    try:
        return parse_size(memory)
    except ValueError as e:
        raise LoadError(str(e)) from None


def prepare(igvm: str | os.PathLike | bytes, *, memory: int | str = "1G", cpus: int = 1, cmdline: str | None = None,
            igvm_type: str | None = None, platform: str | None = None):
    """The checked load plan a launch with these options would apply (vmm.igvm_source.PreparedIgvm); no KVM.

    LoadError for a file pyvmm refuses. A bytes argument is named "<bytes>" in messages.
    """
    from .igvm_source import IgvmSpec, prepare_igvm
    mem = _memory(memory)
    if isinstance(igvm, (bytes, bytearray, memoryview)):
        return prepare_igvm(IgvmSpec("<bytes>", igvm_type), mem, cpus, cmdline, platform, raw=bytes(igvm))
    return prepare_igvm(IgvmSpec(os.fspath(igvm), igvm_type), mem, cpus, cmdline, platform)


def plan_text(igvm: str | os.PathLike | bytes, *, label: str | None = None, memory: int | str = "1G", cpus: int = 1,
              cmdline: str | None = None, igvm_type: str | None = None, platform: str | None = None) -> str:
    """The text `pyvmm igvm plan` prints for these options (label replaces the file name in its first line)."""
    from .plan_text import plan_lines
    prepared = prepare(igvm, memory=memory, cpus=cpus, cmdline=cmdline, igvm_type=igvm_type, platform=platform)
    return "\n".join(plan_lines(prepared, label)) + "\n"


def run_igvm(igvm: str | os.PathLike | bytes, *, memory: int | str = "1G", cpus: int = 1, cmdline: str | None = None,
             igvm_type: str | None = None, platform: str | None = None, timeout: float | None = 30.0,
             no_reboot: bool = True, serial_input: bytes = b"", fw_cfg: dict[str, bytes] | None = None,
             vmfwupdate: bool = True) -> GuestOutput:
    """Launch an IGVM (a path, or the file's bytes) as `pyvmm --igvm` would and run it to its end.

    Raises LoadError for a file pyvmm refuses (the message is the one the CLI prints). A guest reset ends
    the run unless no_reboot is False (a reset that applies a vmfwupdate request continues into the new
    firmware either way); a timeout ends it with Outcome.TIMEOUT (status 124). fw_cfg adds files
    (name -> bytes) to the machine's fw_cfg, like --fw-cfg; vmfwupdate=False leaves etc/vmfwupdate out, like
    --no-vmfwupdate.

    The finished VM is closed by a background thread (vmm.teardown), so a suite of launches does not wait for
    the kernel to destroy each VM; vmm.teardown.drain() waits until every one is closed.
    """
    from .launch import launch
    mem = _memory(memory)
    prepared = prepare(igvm, memory=mem, cpus=cpus, cmdline=cmdline, igvm_type=igvm_type, platform=platform)
    out = bytearray()
    lock = threading.Lock()

    def sink(data: bytes) -> None:
        with lock:
            out.extend(data)
    from chipset.fw_cfg import FwCfgFile

    from .fw_cfg import fw_cfg_items
    items = fw_cfg_items(mem, cpus, tuple(FwCfgFile(n, d) for n, d in (fw_cfg or {}).items()), vmfwupdate=vmfwupdate)
    config = MachineConfig(memory=mem, cpus=cpus, serial_out=sink, fw_cfg=items, vmfwupdate=vmfwupdate,
                           firmware_window=prepared.firmware_window)
    first = [True]

    def on_machine(m) -> None:
        if m is not None and first[0] and serial_input:
            m.serial_input(serial_input)
            first[0] = False
    plan = prepared.plan
    result = launch(config, lambda machine: plan, no_reboot=no_reboot, timeout=timeout, on_machine=on_machine,
                    close_later=True)
    return GuestOutput(result, bytes(out))

"""Launch an accepted IGVM mutant in a real VM, in-process, and name how it ended; used by igvm_mutants.py --launch.

A launch ends in one of the statuses the CLI documents (vmm/status.py and the guest's own debug-exit values): the
guest's exit (odd), power-off or reset under --no-reboot (0), a plan that does not load (2, LoadError), a guest or KVM
failure (3: FATAL outcome or KvmError), or the timeout (124). Anything else raised is a crash, and propagates.
"""

from __future__ import annotations

from collections import Counter

from kvm.errors import KvmError
from loaders.errors import LoadError

LAUNCH_TIMEOUT = 1.0        # seconds a mutant may run; most mutants' code is garbage that faults or halts sooner


def launch_mutant(plan, memory: int, cpus: int, counts: Counter, firmware_window: int = 0,
                  messages: dict[str, str] | None = None) -> int:
    """Run `plan` once (no relaunch on reset) for at most LAUNCH_TIMEOUT seconds; returns and counts the status.

    `firmware_window` is what vmm.igvm_source.prepare_igvm found the file's pages need below 4 GiB, as the CLI
    passes it; without it a plan with pages there is refused at load. `messages` keeps the first message of each
    status other than a timeout or reset (a FATAL's first line says whether the guest or the VMM failed)."""
    from vmm.launch import launch
    from vmm.machine import MachineConfig
    cfg = MachineConfig(memory=memory, cpus=cpus, firmware_window=firmware_window)
    cfg.log = lambda line: None
    try:
        result = launch(cfg, lambda machine: plan, no_reboot=True, timeout=LAUNCH_TIMEOUT)
        status, how, text = result.status, result.outcome.value, result.message
    except LoadError as e:
        status, how, text = 2, "refused at load", str(e)
    except KvmError as e:
        status, how, text = 3, "KVM error", str(e)
    if not (status in (0, 2, 3, 124) or status & 1):
        raise AssertionError(f"launch ended with undocumented status {status} ({how})")
    key = f"{how} ({status if status in (0, 2, 3, 124) else 'guest exit'})"
    counts[key] += 1
    if messages is not None and status not in (0, 124):
        messages.setdefault(key, (text.splitlines() or [""])[0][:200])
    return status

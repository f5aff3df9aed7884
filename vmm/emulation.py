"""The machine's side of the instruction emulator: called on KVM_EXIT_INTERNAL_ERROR with the emulation
suberror, it finishes the instruction (vmm.emulate) and counts it; lock-prefixed instructions pause the other
vCPUs (vmm.pause). Imported only when a guest first needs it."""

from __future__ import annotations

import threading
from collections import Counter

from .emulate.emulator import KVM_INTERNAL_ERROR_EMULATION, emulate, exit_instruction_bytes
from .emulate.faults import CannotEmulate
from .pause import VcpuPause


class Emulation:
    """Per machine: finishes emulation failures and counts them by mnemonic (--trace exits)."""

    def __init__(self, memory, vcpus: list, pause: VcpuPause) -> None:
        self.memory = memory
        self.pause = pause if len(vcpus) > 1 else None
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle(self, vcpu, internal) -> str | None:
        """None when the instruction was finished (or its fault injected) and the vCPU may re-enter; else the
        line that names what could not be emulated."""
        if internal.suberror != KVM_INTERNAL_ERROR_EMULATION:
            return ""
        exclusive = None if self.pause is None else (lambda: self.pause.exclusive(vcpu))
        try:
            done = emulate(vcpu, self.memory, exit_instruction_bytes(internal), exclusive)
        except CannotEmulate as e:
            return f"pyvmm could not emulate it: {e}"
        with self._lock:
            self.counts[done] += 1
        return None

    def report(self) -> str:
        parts = ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"pyvmm: trace: emulated instructions: {parts or 'none'}"

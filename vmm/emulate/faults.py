"""Exceptions an emulated instruction raises in the guest, and their injection through KVM_SET_VCPU_EVENTS."""

from __future__ import annotations

DE, DB, BP, UD, NM, DF, TS, NP, SS, GP, PF, MF, AC, XM = 0, 1, 3, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 19
NAMES = {DE: "#DE", BP: "#BP", UD: "#UD", NM: "#NM", DF: "#DF", TS: "#TS", NP: "#NP", SS: "#SS", GP: "#GP",
         PF: "#PF", MF: "#MF", AC: "#AC", XM: "#XM"}
_WITH_ERROR_CODE = {DF, TS, NP, SS, GP, PF, AC}


class GuestFault(Exception):
    """The instruction faults in the guest: deliver `vector` (with `error_code` where the vector has one; cr2
    for #PF) and leave RIP at the instruction, as the CPU does for a fault."""

    def __init__(self, vector: int, error_code: int = 0, cr2: int | None = None) -> None:
        super().__init__(f"{NAMES.get(vector, vector)}({error_code:#x})" if vector in _WITH_ERROR_CODE
                         else NAMES.get(vector, str(vector)))
        self.vector = vector
        self.error_code = error_code
        self.cr2 = cr2


class CannotEmulate(Exception):
    """pyvmm does not finish this instruction (an MMIO operand, a mode it does not model): the run stops with
    the register dump and this message."""


def inject(vcpu, fault: GuestFault) -> None:
    """Queue `fault` for the vCPU's next entry (CR2 first for a page fault, as the CPU sets it on delivery)."""
    if fault.cr2 is not None:
        s = vcpu.get_sregs()
        s.cr2 = fault.cr2
        vcpu.set_sregs(s)
    e = vcpu.get_vcpu_events()
    e.exception.injected = 1
    e.exception.pending = 0
    e.exception.nr = fault.vector
    e.exception.has_error_code = int(fault.vector in _WITH_ERROR_CODE)
    e.exception.error_code = fault.error_code
    e.exception_has_payload = 0
    vcpu.set_vcpu_events(e)

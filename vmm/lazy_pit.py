"""The in-kernel PIT (KVM_CREATE_PIT2), created at the guest's first access to its ports instead of with the VM.

Destroying a VM that has the in-kernel PIT costs ~16 ms here (Linux's arch/x86/kvm/i8254.c kvm_free_pit stops
its kthread worker and unregisters its two port devices, each an SRCU grace period), against ~0.2 ms without
it; most test guests never touch the PIT, Linux and firmware do. So the machine starts without it, with ports
0x40-0x43 and 0x61 on pyvmm's port bus, and the first exit on them creates it. Created later, it is the same
device: KVM_CREATE_PIT2 only asks for the irqchip (vCPUs may exist and run), the PIT's GSI 0 route is the
VM's routing table (set at build), and kvm_create_pit sets reinjection and PIT_SPEAKER_DUMMY as before.

That first access must still happen, once, as the in-kernel PIT would have done it. KVM completes a port exit
at the next KVM_RUN (arch/x86/kvm/x86.c complete_fast_pio_in/out: the IN's value merged into RAX, RIP past
the instruction), and KVM_RUN with immediate_exit set runs that completion and returns before the guest runs
another instruction (Documentation/virt/kvm/api.rst, "immediate_exit"). So the vCPU that exited:
  1. completes its exit that way (before the PIT exists, so no device sees the discarded completion);
  2. creates the PIT (once, under a lock: several vCPUs may exit on these ports at the same time);
  3. puts back the registers it had at the exit (KVM_SET_REGS, and the STI/MOV SS interrupt shadow that the
     skip cleared), so the same instruction runs again, now handled in the kernel: KVM does the access
     itself, reads included (a counter's value, port 0x61's OUT2 and refresh bits), with no 8254 model.
When step 1 changes no register, KVM had finished the instruction before it exited: a KVM that exits for
an OUT with RIP already past it (PVM's kvm_pvm, the development host's, does; it completes an IN as above),
or a string OUTS that KVM's emulator retired (x86_emulate_instruction writes the registers back before it
exits for an OUT). A one-byte OUT is then found behind RIP (E6 ib or EE; RIP moves back over it) and runs
again in the kernel. Anything else (OUTS, a 2- or 4-byte OUT) is applied with KVM_GET_PIT2, the 8254 write
model below (i8254.c pit_ioport_write, speaker_ioport_write) and KVM_SET_PIT2. KVM_SET_PIT2 restarts every
counter from its count (a restart that a control word alone would not do: visible only to a guest that then
waits 55 ms without loading channel 0's count), and the model counts channel 0's elapsed time from 0, which
is exact for a channel 0 nobody has loaded yet.

The vCPU run loop is unchanged (no per-exit work): the ports are plain bus devices, and after creation KVM
claims every access they can see except shapes the in-kernel PIT never takes (say a 2-byte access at 0x43:
kvm_io_bus_cmp wants the access inside a device's range), which read all-ones and are ignored, as before.
The unloaded counters of channels 1 and 2 start counting at creation, not at VM creation (both arbitrary
times before the guest programs them). MachineConfig.lazy_pit=False creates the PIT with the VM, as before.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable

from kvm import KvmError
from kvm.ioctl import run_ioctl, thread_errno
from kvm.uapi import PIT_FLAGS_SPEAKER_DATA_ON, PIT_SPEAKER_DUMMY, ExitReason, Ioctl, kvm_pit_channel_state, \
    kvm_pit_state2

PIT_PORT, PIT_PORTS = 0x40, 4          # KVM_PIT_BASE_ADDRESS, KVM_PIT_MEM_LENGTH (arch/x86/kvm/i8254.h)
SPEAKER_PORT, SPEAKER_PORTS = 0x61, 4  # the speaker device KVM registers with PIT_SPEAKER_DUMMY (4 ports long)
PIT_FREQ = 1193181                     # KVM_PIT_FREQ, Hz
RW_LSB, RW_MSB, RW_WORD0, RW_WORD1 = 1, 2, 3, 4
MAX_COMPLETIONS = 4096                 # KVM_RUNs to complete one exit (a REP INS comes back once per page)


def claimed_by_kernel(port: int, size: int) -> bool:
    """Whether the in-kernel PIT takes this access: it must lie inside one of its devices (virt/kvm/kvm_main.c
    kvm_io_bus_cmp), and the speaker device answers only at 0x61 itself (speaker_ioport_read/write)."""
    return PIT_PORT <= port and port + size <= PIT_PORT + PIT_PORTS or \
        port == SPEAKER_PORT and size <= SPEAKER_PORTS


class LazyPit:
    """Ports 0x40-0x43 and 0x61 until the in-kernel PIT exists; `created` says whether it does."""

    def __init__(self, vm, bus, read_guest: Callable[[int, int], bytes | None],
                 flags: int = PIT_SPEAKER_DUMMY) -> None:
        """read_guest(gpa, n): n bytes of guest-physical memory, or None where there is none."""
        self.vm = vm
        self.read_guest = read_guest
        self.flags = flags
        self.created = False
        self._lock = threading.Lock()
        bus.register(PIT_PORT, PIT_PORTS, _Ports(self, PIT_PORT), "i8254 PIT (in-kernel from its first access)")
        bus.register(SPEAKER_PORT, 1, _Ports(self, SPEAKER_PORT), "port 0x61 (in-kernel PIT from its first access)")

    def create(self) -> None:
        """Create the in-kernel PIT unless it exists (any thread)."""
        with self._lock:
            if not self.created:
                self.vm.create_pit2(self.flags)
                self.created = True

    def access(self, port: int, size: int, data: bytes | None) -> None:
        """A port exit at `port` (data: the bytes an OUT/OUTS wrote; None for IN/INS), on the calling vCPU's
        thread: create the PIT and have the access happen in it (module docstring)."""
        if not claimed_by_kernel(port, size):
            return                              # never the in-kernel PIT's: all-ones, as an unclaimed port
        vcpu = self._calling_vcpu()
        regs = vcpu.get_regs()
        shadow = vcpu.get_vcpu_events().interrupt.shadow
        self._complete_exit(vcpu, port)
        self.create()
        if bytes(vcpu.get_regs()) != bytes(regs):
            vcpu.set_regs(regs)                 # run the instruction again, in the kernel this time
            if shadow:
                events = vcpu.get_vcpu_events()
                events.interrupt.shadow = shadow
                vcpu.set_vcpu_events(events)
            return
        if data is None:
            return
        back = self._out_behind(vcpu, regs, port) if len(data) == size == 1 else 0
        if back:                                # an OUT whose RIP KVM advanced before it exited
            regs.rip -= back
            vcpu.set_regs(regs)
        else:                                   # an OUTS the emulator retired, or a wider OUT of that kind
            self.apply_writes(port, size, data)

    def _out_behind(self, vcpu, regs, port: int) -> int:
        """Length of the one-byte OUT to `port` that ends at RIP (E6 ib: 2, EE with DX = port: 1), or 0. Neither
        can be misread: no PIT port is 0xEE, an OUTS that KVM retired ends in 6E, and a prefix (66, REX) does
        not change a one-byte OUT, so running it again without one is the same access."""
        if regs.rip < 2:
            return 0
        sregs = vcpu.get_sregs()
        linear = regs.rip + (0 if sregs.cs.l else sregs.cs.base)
        code = b""
        for at in (linear - 2, linear - 1):     # byte by byte: the two may lie on different pages
            gpa = vcpu.translate(at)
            byte = None if gpa is None else self.read_guest(gpa, 1)
            if not byte:
                return 0
            code += byte
        if code[1] == 0xEE and regs.rdx & 0xFFFF == port:
            return 1
        return 2 if code == bytes((0xE6, port)) else 0

    def apply_writes(self, port: int, size: int, data: bytes) -> None:
        """Apply writes of `size` bytes each to the in-kernel PIT through its state (KVM_GET/SET_PIT2)."""
        with self._lock:
            state = self.vm.get_pit2()
            now = time.monotonic_ns()           # CLOCK_MONOTONIC, the clock of count_load_time (ktime_get)
            for i in range(0, len(data) - size + 1, size):
                pit_write(state, port, int.from_bytes(data[i:i + size], "little"), now)
            self.vm.set_pit2(state)

    def _calling_vcpu(self):
        me = threading.get_ident()
        for v in self.vm.vcpus:
            if v.thread_id == me:
                return v
        raise RuntimeError("a PIT port access outside a vCPU thread")

    @staticmethod
    def _complete_exit(vcpu, port: int) -> None:
        """KVM_RUN with immediate_exit until KVM has completed this vCPU's pending port exit; immediate_exit
        stays set, so the run loop's next KVM_RUN returns EINTR and it looks at the stop flag as after a kick."""
        run = vcpu.run
        run.immediate_exit = 1
        err = thread_errno()
        for _ in range(MAX_COMPLETIONS):
            if run_ioctl(vcpu.fd, int(Ioctl.RUN), 0) < 0:
                if err[0] in (errno.EINTR, errno.EAGAIN):
                    return
                raise KvmError("KVM_RUN", err[0])
            if run.exit_reason != ExitReason.IO or run.u.io.port != port:   # a REP INS's next page comes back
                break
        raise KvmError("KVM_RUN", errno.EIO, f"completing a port {port:#x} exit for the in-kernel PIT")


class _Ports:
    """One of LazyPit's two port ranges on the bus."""

    def __init__(self, pit: LazyPit, base: int) -> None:
        self.pit, self.base = pit, base

    def io_read(self, offset: int, size: int) -> int:
        self.pit.access(self.base + offset, size, None)
        return 0xFFFFFFFF

    def io_read_string(self, offset: int, size: int, count: int) -> bytes:
        self.pit.access(self.base + offset, size, None)
        return b"\xff" * (size * count)

    def io_write(self, offset: int, size: int, value: int) -> None:
        self.pit.access(self.base + offset, size, value.to_bytes(size, "little"))

    def io_write_string(self, offset: int, size: int, data: bytes) -> None:
        self.pit.access(self.base + offset, size, data)


# --- the 8254 write model, as arch/x86/kvm/i8254.c has it --------------------------------------------------

def _ticks(c: kvm_pit_channel_state, channel: int, now: int) -> int:
    """PIT clocks since the counter was loaded (kpit_elapsed); channel 0's comes from its hrtimer, which the
    state does not hold: 0, as for a channel 0 never loaded (__kpit_elapsed with no period)."""
    ns = 0 if channel == 0 else max(0, now - c.count_load_time)
    return ns * PIT_FREQ // 1_000_000_000


def pit_get_count(c: kvm_pit_channel_state, d: int) -> int:
    if c.mode in (0, 1, 4, 5):
        return (c.count - d) & 0xFFFF
    if c.mode == 3:
        return c.count - (2 * d) % c.count
    return c.count - d % c.count


def pit_get_out(c: kvm_pit_channel_state, d: int) -> int:
    if c.mode == 1:
        return int(d < c.count)
    if c.mode == 2:
        return int(d % c.count == 0 and d != 0)
    if c.mode == 3:
        return int(d % c.count < (c.count + 1) >> 1)
    if c.mode in (4, 5):
        return int(d == c.count)
    return int(d >= c.count)


def _load_count(c: kvm_pit_channel_state, channel: int, value: int, now: int) -> None:
    """pit_load_count: 0 means 0x10000; channel 0 keeps its load time (its timer restarts at KVM_SET_PIT2)."""
    c.count = value or 0x10000
    if channel:
        c.count_load_time = now


def pit_write(state: kvm_pit_state2, port: int, value: int, now: int) -> None:
    """One guest write of `value` to `port` (0x40-0x43 or 0x61), applied to `state` as the in-kernel PIT does."""
    if port == SPEAKER_PORT:                                    # speaker_ioport_write
        if value & 2:
            state.flags |= PIT_FLAGS_SPEAKER_DATA_ON
        else:
            state.flags &= ~PIT_FLAGS_SPEAKER_DATA_ON
        c = state.channels[2]
        if c.mode in (1, 2, 3, 5) and c.gate < (value & 1):   # pit_set_gate: a rising edge restarts counting
            c.count_load_time = now
        c.gate = value & 1
        return
    value &= 0xFF
    addr = port & 3
    if addr != 3:                                               # write count
        c = state.channels[addr]
        if c.write_state == RW_MSB:
            _load_count(c, addr, value << 8, now)
        elif c.write_state == RW_WORD0:
            c.write_latch = value
            c.write_state = RW_WORD1
        elif c.write_state == RW_WORD1:
            _load_count(c, addr, c.write_latch | value << 8, now)
            c.write_state = RW_WORD0
        else:                                                   # RW_LSB, and the default
            _load_count(c, addr, value, now)
        return
    channel = value >> 6
    if channel == 3:                                            # read-back command
        for ch in range(3):
            if value & (2 << ch):
                if not value & 0x20:
                    _latch_count(state, ch, now)
                if not value & 0x10:
                    _latch_status(state, ch, now)
        return
    c = state.channels[channel]
    access = (value >> 4) & 3
    if access == 0:
        _latch_count(state, channel, now)
        return
    c.rw_mode = c.read_state = c.write_state = access
    c.mode = (value >> 1) & 7
    if c.mode > 5:
        c.mode -= 4
    c.bcd = value & 1


def _latch_count(state: kvm_pit_state2, channel: int, now: int) -> None:
    c = state.channels[channel]
    if not c.count_latched:
        c.latched_count = pit_get_count(c, _ticks(c, channel, now)) & 0xFFFF
        c.count_latched = c.rw_mode


def _latch_status(state: kvm_pit_state2, channel: int, now: int) -> None:
    c = state.channels[channel]
    if not c.status_latched:
        out = pit_get_out(c, _ticks(c, channel, now))
        c.status = (out << 7 | c.rw_mode << 4 | c.mode << 1 | c.bcd) & 0xFF
        c.status_latched = 1

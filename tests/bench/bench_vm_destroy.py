"""What closing a finished VM costs, and which in-kernel device it goes to (alternating rounds, same process).

Usage: python tests/bench/bench_vm_destroy.py [--runs 15]
Closing a VM's last file descriptor makes Linux destroy it (virt/kvm/kvm_main.c kvm_destroy_vm) before close()
returns, and at process exit before the parent's wait returns: that is most of the time between a guest's last
byte and the end of a `pyvmm` process. Cells, each closed right after it is built:
  * pyvmm: a Machine that ran a guest that never touches the PIT to its debug exit (Machine.close: vCPUs, VM,
    guest RAM), so without the in-kernel PIT (vmm/lazy_pit.py creates it at a guest's first access to its ports);
  * pyvmm, eager PIT: the same with MachineConfig(lazy_pit=False), the PIT made with the VM (pyvmm before);
  * vm: a bare VM with the in-kernel irqchip, 64 MiB of RAM in one slot and one vCPU (what pyvmm has, less the PIT);
  * vm, its vCPU ran one exit: the same after one KVM_RUN (a VM that ran waits longer on its destruction);
  * vm + pit: the bare VM with KVM_CREATE_PIT2 (arch/x86/kvm/i8254.c: its worker thread is
    stopped and its port devices unregistered on destroy);
  * vm, RAM slot before the irqchip: the slot added before KVM_CREATE_IRQCHIP, as pyvmm adds it (the other order
    made an in-process launch 3x slower: adding the slot then waits on the kernel);
  * vm + coalesced zone: the bare VM with COM1's coalesced PIO zone, left to the VM's destruction or unregistered
    by Vm.close() first (what Vm.close() does now).
Prints medians (min-max) in ms and the load average.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kvm import Kvm  # noqa: E402
from kvm.ioctl import ioctl  # noqa: E402
from kvm.uapi import Ioctl  # noqa: E402
from loaders.flat import flat_plan  # noqa: E402
from tests.guests.build import build  # noqa: E402
from vmm.machine import Machine, MachineConfig  # noqa: E402
from vmm.pc_layout import PC  # noqa: E402

RAM = 64 << 20


def close_machine(image: bytes, lazy_pit: bool = True) -> float:
    """ms spent in Machine.close() after the guest ran to its debug exit."""
    m = Machine(MachineConfig(memory=RAM, serial_out=lambda b: None, lazy_pit=lazy_pit))
    try:
        m.load(flat_plan(image))
        assert m.run(60).status == 1
    finally:
        t0 = time.perf_counter()
        m.close()
    return (time.perf_counter() - t0) * 1e3


def close_vm(kvm: Kvm, pit: bool, run: bool = False, slot_first: bool = False, zone: str = "") -> float:
    """ms spent closing a bare VM (irqchip, RAM, one vCPU; the PIT if asked) that never ran, or with run=True whose
    vCPU ran one instruction (a real-mode `out %al, $0x80` at 0x1000: one exit to userspace). slot_first: the RAM
    slot added before the irqchip is created. zone: "kept", a coalesced PIO zone (COM1, as pyvmm has) left to the
    VM's destruction; "unregistered", the same zone taken out by Vm.close() before the fd is closed."""
    ram = mmap.mmap(-1, RAM)
    anchor = ctypes.c_char.from_buffer(ram)
    vm = kvm.create_vm()
    try:
        vm.set_tss_addr(PC.tss_addr)
        if slot_first:
            vm.add_memory(0, RAM, ctypes.addressof(anchor))
        vm.create_irqchip()
        if pit:
            vm.create_pit2()
        if not slot_first:
            vm.add_memory(0, RAM, ctypes.addressof(anchor))
        if zone:
            vm.register_coalesced(PC.com1_port, 1, pio=True)
            if zone == "kept":
                vm._zones.clear()            # what Vm.close() did before it unregistered zones
        vcpu = vm.create_vcpu(0)
        if run:
            ram[0x1000:0x1002] = b"\xe6\x80"
            sregs = vcpu.get_sregs()
            sregs.cs.base = sregs.cs.selector = 0
            vcpu.set_sregs(sregs)
            regs = vcpu.get_regs()
            regs.rip, regs.rflags = 0x1000, 2
            vcpu.set_regs(regs)
            ioctl(vcpu.fd, Ioctl.RUN, 0, "KVM_RUN")
    finally:
        t0 = time.perf_counter()
        vm.close()
        took = time.perf_counter() - t0
        del anchor
        ram.close()
    return took * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    image = build("outloop.S", defines={"COUNT": 1, "PORT": 0x80})
    cells = {"pyvmm Machine.close() after a run": [], "pyvmm, eager PIT": [], "vm (irqchip, RAM, vCPU)": [],
             "vm, its vCPU ran one exit": [], "vm + pit": [], "vm, RAM slot before the irqchip": [],
             "vm + coalesced zone left to destroy": [], "vm + coalesced zone unregistered": []}
    with Kvm() as kvm:
        for _ in range(a.runs):
            cells["pyvmm Machine.close() after a run"].append(close_machine(image))
            cells["pyvmm, eager PIT"].append(close_machine(image, lazy_pit=False))
            cells["vm (irqchip, RAM, vCPU)"].append(close_vm(kvm, False))
            cells["vm, its vCPU ran one exit"].append(close_vm(kvm, False, run=True))
            cells["vm + pit"].append(close_vm(kvm, True))
            cells["vm, RAM slot before the irqchip"].append(close_vm(kvm, False, slot_first=True))
            cells["vm + coalesced zone left to destroy"].append(close_vm(kvm, False, zone="kept"))
            cells["vm + coalesced zone unregistered"].append(close_vm(kvm, False, zone="unregistered"))
    print(f"close() of a finished VM, {a.runs} alternating rounds, ms: median (min-max); "
          f"load average {os.getloadavg()[0]:.2f}")
    for label, xs in cells.items():
        print(f"  {label:36} {statistics.median(xs):7.2f} ({min(xs):.2f}-{max(xs):.2f})")


if __name__ == "__main__":
    main()

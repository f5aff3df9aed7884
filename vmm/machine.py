"""The machine: one KVM VM with RAM, in-kernel irqchip and PIT (made at first use), the chipset, one thread a vCPU.

A Machine runs once. A guest reset ends the run with Outcome.RESET; relaunching (a fresh Machine on the same
guest RAM, loaded from the same plan or from a vmfwupdate image) is the caller's decision, see vmm.launch.
"""

from __future__ import annotations

import ctypes
import errno
import sys
import threading
import time
from loaders.record import field, record
from collections.abc import Callable

from chipset.bus import PortBus
from chipset.debug_exit import DebugExit
from chipset.fw_cfg import FwCfg, FwCfgItems
from chipset.i8042 import I8042
from chipset.uart16550 import Uart16550
from kvm import Kvm, KvmError, Vcpu, install_kick_handler
from kvm.ioctl import run_ioctl, thread_errno
from kvm.uapi import (IRQCHIP_IOAPIC, IRQCHIP_PIC_MASTER, IRQCHIP_PIC_SLAVE, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, PAGE_SIZE,
                      IO_OUT, PIO_PAGE_OFFSET, Cap, ExitReason, Ioctl, MpState, SystemEvent, exit_reason_name, field_offset,
                      kvm_run)
from loaders.elf_symbols import Symbols
from loaders.errors import LoadError
from loaders.plan import LoadPlan

from . import status
from .cpu_model import CpuModel, apply_cpu_model
from .memory import MMIO_HOLE_END, GuestMemory
from .pc_layout import PC
from .vcpu_setup import BOOT_MSRS, apply_vp_state, cpuid_for_vcpu, setup_lapic
from .write_buffer import WriteBuffer

RESET_IP = 0xFFF0             # IP after an x86 reset (with CS base 0xFFFF0000: the reset vector 0xFFFFFFF0)
DRAIN_INTERVAL = 0.02          # seconds between drains of the coalesced ring while vCPUs sit in HLT


def _run_index(path: str, width: int) -> int:
    """Index of a kvm_run field in the page viewed as `width`-byte integers, from kvm/uapi.py's declaration (the
    run loop reads fields by index, cheaper than a ctypes attribute); refuses a field of another width or alignment."""
    offset, size = field_offset(kvm_run, path)
    if size != width or offset % width:
        raise AssertionError(f"kvm_run.{path} is {size} bytes at {offset}, not a {width}-byte index")
    return offset // width


AMD_MEM_ENCRYPT_LEAF = 0x8000001F     # SME/SEV capabilities (AMD APM vol. 3, CPUID Fn8000_001F)

# The kvm_run fields the vCPU loop reads, computed once at import.
RUN_IMMEDIATE_EXIT = _run_index("immediate_exit", 1)
RUN_EXIT_REASON = _run_index("exit_reason", 4)
RUN_IO_DIRECTION = _run_index("u.io.direction", 1)
RUN_IO_SIZE = _run_index("u.io.size", 1)
RUN_IO_PORT = _run_index("u.io.port", 2)
RUN_IO_COUNT = _run_index("u.io.count", 4)
RUN_IO_DATA_OFFSET = _run_index("u.io.data_offset", 8)
RUN_MMIO_DATA = _run_index("u.mmio.data", 8)
RUN_MMIO_IS_WRITE = _run_index("u.mmio.is_write", 1)
# u.io's direction, size, port and count as one u64 (direction | size << 8 | port << 16 | count << 32): the key of
# the run loop's port cache, read with one index
RUN_IO_WORD = RUN_IO_DIRECTION // 8
if (RUN_IO_DIRECTION % 8, RUN_IO_SIZE - RUN_IO_WORD * 8, RUN_IO_PORT * 2 - RUN_IO_WORD * 8,
        RUN_IO_COUNT * 4 - RUN_IO_WORD * 8) != (0, 1, 2, 4):
    raise AssertionError("kvm_run.u.io: direction, size, port and count are not one aligned u64")
PIO_DATA = PIO_PAGE_OFFSET * PAGE_SIZE   # where KVM puts KVM_EXIT_IO data (data_offset)


def pc_gsi_routes() -> list[tuple[int, int, int]]:
    """GSI routes of a PC, as QEMU installs them: ISA IRQs on the 8259s, and on the IOAPIC with IRQ0 (the PIT)
    on pin 2, which is what the MADT and MP table tell the guest. KVM's default puts IRQ0 on pin 0."""
    pic = [(i, IRQCHIP_PIC_MASTER if i < 8 else IRQCHIP_PIC_SLAVE, i % 8) for i in range(16) if i != 2]
    ioapic = [(i, IRQCHIP_IOAPIC, PC.pit_gsi if i == PC.pit_irq else i) for i in range(PC.ioapic_pins)
              if i != PC.pit_gsi]
    return pic + ioapic


def register_dump(vcpu: Vcpu, memory: GuestMemory | None) -> str:
    """vmm.regdump's dump, imported when a guest fails (a launch that succeeds never needs it)."""
    from .regdump import register_dump as dump
    return dump(vcpu, memory)


class OutcomeKind(str):
    """One Outcome: a string (its value) with the .name and .value an Enum member has; not an Enum, so that the
    `enum` module stays off the launch path. Compare with `is` or ==."""

    def __new__(cls, name: str, value: str) -> "OutcomeKind":
        kind = str.__new__(cls, value)
        kind.name = name
        return kind

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"<Outcome.{self.name}: {str.__repr__(self)}>"


class Outcome:
    """How a run ended."""
    EXIT = OutcomeKind("EXIT", "debug-exit")        # guest wrote to port 0xf4
    POWEROFF = OutcomeKind("POWEROFF", "power-off")
    RESET = OutcomeKind("RESET", "reset")
    FATAL = OutcomeKind("FATAL", "fatal")
    TIMEOUT = OutcomeKind("TIMEOUT", "timeout")
    QUIT = OutcomeKind("QUIT", "quit")              # the user asked (ctrl-a x)


@record(frozen=True)
class RunResult:
    outcome: Outcome
    status: int                # the process exit status (vmm/status.py) of this outcome
    message: str = ""


@record
class MachineConfig:
    memory: int = 1 << 30
    cpus: int = 1
    serial_out: Callable[[bytes], None] | None = None   # None: serial output is dropped
    trace: frozenset[str] = frozenset()                 # {"exits", "rip"}
    cpu: CpuModel = CpuModel()                          # --cpu: features cleared from KVM's supported CPUID
    symbols: Symbols | None = None                      # names for --trace rip (the ELF kernel's symtab)
    fw_cfg: FwCfgItems | None = None                    # None: the default set for memory and cpus (vmm.fw_cfg)
    firmware: bytes | None = None                       # --bios: a ROM image mapped to end at 4 GiB (vmm.firmware)
    firmware_window: int = 0                            # bytes of firmware window without an image (an IGVM fills it)
    debugcon: Callable[[bytes], None] | None = None     # --debugcon: port 0x402's sink; None: the port is unassigned
    milestones: object | None = None                    # vmm.milestones.Milestones (--trace milestones)
    vmfwupdate: bool = True                             # the etc/vmfwupdate fw_cfg file (--no-vmfwupdate: False)
    split_gib_pages: bool | None = None                 # None: where KVM offers no 1 GiB pages (vmm.gib_split)
    lazy_pit: bool = True                               # in-kernel PIT at the first access to it (vmm.lazy_pit)
    log: Callable[[str], None] = field(default=lambda s: print(s, file=sys.stderr, flush=True))


class Machine:
    """A VM ready to load a plan and run; a context manager that releases every fd and mapping."""

    window = None                  # vmm.firmware.FirmwareWindow, with --bios or a firmware IGVM
    _lazy_pit = None               # vmm.lazy_pit.LazyPit until the guest's first PIT access (MachineConfig.lazy_pit)

    def __init__(self, config: MachineConfig, kvm: Kvm | None = None, memory: GuestMemory | None = None) -> None:
        """memory: guest RAM to run on (kept by the caller across resets); None: fresh RAM owned by this machine."""
        if not 1 <= config.cpus <= 255:
            raise ValueError(f"processor count {config.cpus} is outside 1..255")
        if memory is not None and memory.size != config.memory:
            raise ValueError(f"guest RAM is {memory.size:#x} bytes, the config says {config.memory:#x}")
        self.config = config
        self._own_kvm = kvm is None
        self.kvm = kvm or Kvm()
        self.vm = None
        self._own_memory = memory is None
        self.memory: GuestMemory | None = memory
        self.vmfwupdate = None          # chipset.vmfwupdate.VmFwUpdate when the machine has the device
        self._split_map = None         # page directories that replace 1 GiB pages (vmm.gib_split)
        self.writes: WriteBuffer | None = None   # the writes KVM buffers instead of exiting, once the VM is built
        self.guest = None              # guest-physical reads: RAM, or RAM and the window (vmm.firmware.GuestView)
        self._stop = threading.Event()
        self._stop_lock = threading.Lock()
        self._result: RunResult | None = None
        self.exit_counts: list[int] = [0] * config.cpus
        self.rip_samples: list[list[int]] = [[] for _ in range(config.cpus)]   # --trace rip
        self._want_sample = [False] * config.cpus
        self._unknown_mmio: set[int] = set()
        self._pm_at: int | None = None
        self._emulation = None             # vmm.emulation.Emulation, made at the first emulation failure
        self._emulation_lock = threading.Lock()
        self._pause = None                 # vmm.pause.VcpuPause on a multi-vCPU machine
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # --- construction -------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        kvm = self.kvm
        self.vm = vm = kvm.create_vm()
        vm.set_tss_addr(PC.tss_addr)
        vm.set_identity_map_addr(PC.identity_map_addr)
        if self.memory is None:
            self.memory = GuestMemory(cfg.memory)
        self.guest = self.memory
        self._add_memory()
        vm.create_irqchip()
        vm.set_gsi_routing(pc_gsi_routes())

        self.bus = PortBus(on_unknown=self._on_unknown_port if "exits" in cfg.trace else None)
        self._lazy_pit = None
        if cfg.lazy_pit:
            from .lazy_pit import LazyPit
            self._lazy_pit = LazyPit(vm, self.bus, self._read_guest)
        else:
            vm.create_pit2()
        out = cfg.serial_out or (lambda data: None)
        if cfg.milestones is not None:
            def out(data: bytes, sink=out, watch=cfg.milestones.serial) -> None:
                watch(data)
                sink(data)
        self.uart = Uart16550(irq=vm.irq_line, line=PC.com1_irq, output=out)
        self.writes = WriteBuffer(self.bus, PC.com1_port, self.uart.transmit, count_com1="exits" in cfg.trace)
        self.bus.register(PC.com1_port, 8, self.uart, "COM1 16550A")
        self.i8042 = I8042(reset=lambda: self.request_stop(Outcome.RESET, status.OK,
                                                           "guest reset through the i8042"),
                           irq=vm.irq_line, line=PC.i8042_irq)
        # Its data and status/command ports only: port 0x61, between them, is the PIT's (vmm.lazy_pit).
        self.bus.register(PC.i8042_port, 1, self.i8042, "i8042")
        status_port = PC.i8042_ports - 1
        self.bus.register(PC.i8042_port + status_port, 1, self.i8042, "i8042 status/command", offset=status_port)
        self.debug_exit = DebugExit(on_exit=lambda value: self.request_stop(Outcome.EXIT, value))
        self.bus.register(PC.debug_exit_port, 1, self.debug_exit, "debug-exit")
        self._add_platform_devices()
        self._add_pci()
        self._add_fw_cfg()
        if cfg.milestones is not None:
            self._watch_milestones(cfg.milestones)

        supported = kvm.supported_cpuid()
        self._cpuids: list = []
        for i in range(cfg.cpus):
            v = vm.create_vcpu(i)
            cpuid = cpuid_for_vcpu(supported, i, cfg.cpus)
            apply_cpu_model(cpuid, cfg.cpu)
            v.set_cpuid(cpuid)
            self._cpuids.append(cpuid)
            v.set_msrs(BOOT_MSRS)
            fpu = v.get_fpu()
            fpu.fcw, fpu.mxcsr = 0x37F, 0x1F80
            v.set_fpu(fpu)
            setup_lapic(v)
        # KVM's MMU takes PS in a PDPTE as a reserved bit unless the vCPU's CPUID has pdpe1gb (KVM's offer, less --cpu)
        self._split_gib = cfg.split_gib_pages if cfg.split_gib_pages is not None else \
            not any(e.function == 0x80000001 and e.edx >> 26 & 1 for e in self._cpuids[0])
        if cfg.cpus > 1:
            from .pause import VcpuPause
            self._pause = VcpuPause(vm.vcpus)

        self.writes.open(kvm, vm)

    def _read_guest(self, gpa: int, size: int) -> bytes | None:
        """Guest-physical bytes (RAM or the firmware window), None outside them."""
        guest = self.guest
        return guest.read(gpa, size) if guest is not None and guest.contains(gpa, size) else None

    @property
    def pit_created(self) -> bool:
        """Whether the VM has the in-kernel PIT yet (with lazy_pit, once the guest touched ports 0x40-0x43/0x61)."""
        return self._lazy_pit is None or self._lazy_pit.created

    def _add_memory(self) -> None:
        """RAM slots, and with firmware the read-only window ending at 4 GiB plus its alias below 1 MiB (the RAM
        under the alias is cut out of the RAM slot: KVM slots may not overlap)."""
        cfg = self.config
        regions = [(r.gpa, r.size, r.mapping.addr) for r in self.memory.regions]
        size = len(cfg.firmware) if cfg.firmware is not None else cfg.firmware_window
        hole = None
        if size:
            from .firmware import FirmwareWindow, ram_slots
            self.window = FirmwareWindow(max(size, cfg.firmware_window), cfg.firmware)
            hole = PC.low_rom_alias
            regions = ram_slots(regions, hole)
        for gpa, n, addr in regions:
            self.vm.add_memory(gpa, n, addr)
        if self.window is not None:
            from .firmware import GuestView
            self.guest = GuestView(self.memory, self.window, PC.low_rom_alias)
            readonly = bool(self.kvm.check_extension(Cap.READONLY_MEM))  # without it, a writable window (QEMU's too)
            for gpa, n, addr in self.window.slots(hole):
                self.vm.add_memory(gpa, n, addr, readonly=readonly)

    def _add_platform_devices(self) -> None:
        """Ports every PC guest touches: POST/io-delay, fast A20, reset control, CMOS/RTC, the debug console."""
        from chipset.cmos import Cmos
        from chipset.misc_ports import FastA20, PostCode, ResetControl
        from .memory import ram_layout
        reset = lambda: self.request_stop(Outcome.RESET, status.OK, "guest reset")  # noqa: E731
        self.bus.register(PC.post_port, 1, PostCode(), "POST code")
        self.writes.add(PC.post_port)
        self.bus.register(PC.a20_port, 1, FastA20(reset=reset), "fast A20")   # bit 0: QEMU's port92 resets
        self.bus.register(PC.reset_port, 1, ResetControl(reset=reset), "reset control")
        ram = ram_layout(self.config.memory)
        self.cmos = Cmos(ram[0][1], sum(n for gpa, n in ram[1:]), self.config.cpus)
        self.bus.register(PC.cmos_port, 2, self.cmos, "CMOS/RTC")
        self.writes.add(PC.cmos_port)            # the index port only: a data access exits
        if self.config.debugcon is not None:
            from chipset.debugcon import DebugCon
            self.bus.register(PC.debugcon_port, 1, DebugCon(self.config.debugcon), "debug console")
            self.writes.add(PC.debugcon_port)

    def _add_pci(self) -> None:
        """PCI bus 0 through configuration mechanism #1: the i440FX host bridge, the PIIX3 ISA bridge and the PIIX4
        PM function, whose ACPI block (power-off, PM timer, SCI) moves where the guest puts PMBA. With firmware
        the PM function starts as QEMU's does (firmware programs it); otherwise pyvmm plays the firmware."""
        from chipset.acpi_pm import AcpiPm
        from chipset.i440fx import I440fxHost
        from chipset.pci import PciConf1
        from chipset.piix3 import Piix3Isa
        from chipset.piix4_pm import Piix4Pm
        self.pci = pci = PciConf1()
        self.bus.register(PC.pci_conf_port, 1, pci.address_port, "PCI conf1 address")
        self.bus.register(PC.pci_data_port, 4, pci.data_port, "PCI conf1 data")
        self.acpi_pm = AcpiPm(lambda: self.request_stop(Outcome.POWEROFF, status.OK, "guest powered off (ACPI S5)"),
                              s5_slp_typ=PC.s5_slp_typ, sci=lambda level: self.vm.irq_line(PC.sci_irq, level))
        pci.add(0, 0, I440fxHost())
        pci.add(PC.piix_device, 0, Piix3Isa())
        firmware = self.window is not None
        pci.add(PC.piix_device, PC.piix_pm_function,
                Piix4Pm(self._map_pm, enabled_at=None if firmware else PC.pm_base))

    def _map_pm(self, base: int | None) -> None:
        """Where the PIIX4 PM block decodes now (the guest wrote PMBA or PMREGMISC); a base that collides with
        another device leaves the block off, as nothing can decode one port twice."""
        old = self._pm_at
        if old is not None:
            self.bus.unregister(old)
            self._pm_at = None
        if base is None:
            return
        try:
            self.bus.register(base, PC.pm_length, self.acpi_pm, "ACPI PM")
            self._pm_at = base
        except ValueError as e:
            if "exits" in self.config.trace:
                self.config.log(f"pyvmm: trace: PIIX4 PM block not mapped: {e}")

    def _add_fw_cfg(self) -> None:
        """QEMU's fw_cfg at the layout's port, served from the config's item set (built fresh per machine, so
        writes do not survive a relaunch)."""
        items = self.config.fw_cfg
        if items is None:
            from .fw_cfg import fw_cfg_items
            items = fw_cfg_items(self.config.memory, self.config.cpus)
        if self.config.vmfwupdate and items.file("etc/vmfwupdate") is None:
            from chipset.vmfwupdate import VmFwUpdate
            self.vmfwupdate = VmFwUpdate(self.memory.ranges(), log=self.config.log)
            items = FwCfgItems(items.keys, [*items.files, self.vmfwupdate.file()])
        on_error = None
        if "exits" in self.config.trace:
            def on_error(why: str) -> None:
                self.config.log(f"pyvmm: trace: fw_cfg: {why}")
        self.fw_cfg = FwCfg(self.memory, items, on_error=on_error)
        self.bus.register(PC.fw_cfg_port, PC.fw_cfg_ports, self.fw_cfg, "fw_cfg")

    def _watch_milestones(self, ms) -> None:
        """Wrap the PCI data port and fw_cfg so their milestone accesses are noted (--trace milestones only)."""
        from .milestones import FW_CFG_SIGNATURE, HOST_BRIDGE, WatchPorts
        pci = self.pci

        def pci_read(offset: int, size: int) -> None:
            if pci.address & 0x80FFFFFC == 1 << 31:         # enabled, bus 0, 00:00.0, register 0 (vendor/device)
                ms.reach(HOST_BRIDGE)
        self.bus.unregister(PC.pci_data_port)
        self.bus.register(PC.pci_data_port, 4, WatchPorts(pci.data_port, on_read=pci_read), "PCI conf1 data")
        selected = [None]

        def fw_write(offset: int, size: int, value: int) -> None:
            if offset == 0:
                selected[0] = value

        def fw_read(offset: int, size: int) -> None:
            if offset == 1 and selected[0] == 0:            # the data port with key 0 (the signature) selected
                ms.reach(FW_CFG_SIGNATURE)
        self.bus.unregister(PC.fw_cfg_port)
        self.bus.register(PC.fw_cfg_port, PC.fw_cfg_ports, WatchPorts(self.fw_cfg, fw_read, fw_write), "fw_cfg")

    def _on_unknown_port(self, port: int, is_write: bool, size: int) -> None:
        self.config.log(f"pyvmm: trace: unclaimed port {port:#06x} ({'write' if is_write else 'read'}, {size} bytes)")

    # --- loading ------------------------------------------------------------------------
    def load(self, plan: LoadPlan) -> None:
        """Apply a plan: check it against RAM, then zero ranges, writes, parameter areas, VP registers.

        LoadError (a ValueError) if anything overlaps or misses RAM. RAM no load has touched is already zero, so
        zero ranges are then only checked, not written (no host pages touched for them); RAM kept from an earlier
        boot (a reset) gets them zeroed.
        """
        mem, window = self.memory, self.window
        if plan.top_ram and not mem.contains(MMIO_HOLE_END - plan.top_ram, plan.top_ram):
            r = mem.add_region(MMIO_HOLE_END - plan.top_ram, plan.top_ram, "RAM below 4 GiB")
            self.vm.add_memory(r.gpa, r.size, r.mapping.addr)
        plan.check(self.load_ranges())
        fresh, mem.untouched = mem.untouched, False
        if not fresh:
            for z in plan.zeros:
                if window is None or not window.contains(z.gpa, z.size):   # a window is new with every machine
                    mem.zero(z.gpa, z.size)
        for w in plan.writes:
            if window is not None and window.contains(w.gpa, len(w.data)):
                window.write(w.gpa, w.data)
            else:
                mem.write(w.gpa, w.data)
        for p in plan.parameters:
            if p.gpa is None:
                continue
            if p.data is None:
                raise LoadError(f"{p.what} was never filled with host parameters")
            mem.write(p.gpa, p.data)
            if not fresh and p.size > len(p.data):
                mem.zero(p.gpa + len(p.data), p.size - len(p.data))   # the unwritten rest of the area is zero
        if plan.hide_sev:
            self._hide_sev()
        if plan.snp_cpuid_pages:
            from loaders.igvm.snp_cpuid import snp_cpuid_table
            for gpa, template in plan.snp_cpuid_pages:
                mem.write(gpa, snp_cpuid_table(template, self.cpuid_leaves()))
        if 0 not in plan.vps:
            raise LoadError("the load plan has no register state for VP 0")
        if self._split_gib:
            self._split_gib_pages(plan)
        for index, vp in sorted(plan.vps.items()):
            if index >= self.config.cpus:
                continue   # a file may describe more VPs than the machine has
            vcpu = self.vm.vcpus[index]
            apply_vp_state(vcpu, vp)
            if index:
                vcpu.set_mp_state(MpState.RUNNABLE)

    def _split_gib_pages(self, plan: LoadPlan) -> None:
        """Rewrite the 1 GiB pages of the VPs' starting page tables as 2 MiB pages (vmm/gib_split.py), in page
        directories mapped in a slot of their own above RAM and 4 GiB."""
        from kvm.mman import HostMapping
        from .gib_split import MAX_DIRECTORIES, PAGE, gib_entries, needs_split, pack_entry, plan_split

        def read_page(gpa: int) -> bytes | None:
            return self._read_guest(gpa, PAGE)
        entries: dict[int, int] = {}
        for index, vp in plan.vps.items():
            if index < self.config.cpus and needs_split(vp):
                entries.update(gib_entries(read_page, vp.cr3, vp.cr4))
        if not entries:
            return
        base = max([MMIO_HOLE_END] + [r.end for r in self.memory.regions])
        base = (base + (2 << 20) - 1) & ~((2 << 20) - 1)
        directories, writes, left = plan_split(sorted(entries.items()), base)
        if self._split_map is None:
            self._split_map = HostMapping(len(directories), what="mmap page directories for 1 GiB pages")
            self.vm.add_memory(base, len(directories), self._split_map.addr)
        elif self._split_map.size < len(directories):
            raise LoadError("the page directories for 1 GiB pages grew after the first load")
        self._split_map.view[:len(directories)] = directories
        for gpa, value in writes:
            self.guest.write(gpa, pack_entry(value))
        if left:
            self.config.log(f"pyvmm: {left} 1 GiB page(s) beyond the first {MAX_DIRECTORIES} left as they are: "
                            "the guest faults if it uses them (KVM offers no 1 GiB pages)")

    def load_ranges(self) -> list[tuple[int, int]]:
        """Where a plan may write: RAM (less the ROM alias below 1 MiB) and the firmware window."""
        if self.window is None:
            return self.memory.ranges()
        from .firmware import load_targets
        return load_targets(self.memory.ranges(), self.window.size, 0, PC.low_rom_alias)   # top_ram: in memory

    def cpuid_leaves(self, index: int = 0) -> list[tuple[int, int, bool, int, int, int, int]]:
        """The CPUID vCPU `index` was given: (function, index, index matters, eax, ebx, ecx, edx) per leaf."""
        return [(e.function, e.index, bool(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX), e.eax, e.ebx, e.ecx, e.edx)
                for e in self._cpuids[index]]

    def _hide_sev(self) -> None:
        """CPUID 0x8000001F (AMD memory encryption) all zero on every vCPU, before any runs: an SNP image launched
        without SNP must see no SME/SEV, or Linux reads MSR_AMD64_SEV (0xC0010131), which KVM does not emulate."""
        for vcpu, cpuid in zip(self.vm.vcpus, self._cpuids):
            for e in cpuid:
                if e.function == AMD_MEM_ENCRYPT_LEAF:
                    e.eax = e.ebx = e.ecx = e.edx = 0
            vcpu.set_cpuid(cpuid)

    # --- running ------------------------------------------------------------------------
    def serial_input(self, data: bytes) -> int:
        """Feed host bytes to COM1's receiver (any thread); returns how many it accepted."""
        return self.uart.receive(data)

    def request_stop(self, outcome: Outcome, status: int, message: str = "") -> None:
        """End the run (first request wins) and kick every vCPU out of KVM_RUN."""
        with self._stop_lock:
            if self._result is None:
                self._result = RunResult(outcome, status, message)
            self._stop.set()
        if self.vm is not None:
            for v in self.vm.vcpus:
                v.kick()

    def run(self, timeout: float | None = None) -> RunResult:
        """Run all vCPUs until the guest exits, resets, powers off, fails, or the timeout passes."""
        if threading.current_thread() is threading.main_thread():
            install_kick_handler()
        if self.config.milestones is not None:
            self.config.milestones.started()
        threads = [threading.Thread(target=self._vcpu_thread, args=(v,), name=f"vcpu{v.index}", daemon=True)
                   for v in self.vm.vcpus]
        for t in threads:
            t.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        sample = "rip" in self.config.trace
        try:
            while not self._stop.wait(DRAIN_INTERVAL):
                self.writes.drain_pending()
                if sample:                      # every vCPU notes its RIP at its next KVM_RUN return (EINTR)
                    for v in self.vm.vcpus:
                        self._want_sample[v.index] = True
                        v.kick()
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_stop(Outcome.TIMEOUT, status.TIMEOUT, f"guest still running after {timeout:g} s (--timeout)")
        finally:
            # Also on an exception here (KeyboardInterrupt in a library caller): no vCPU thread may outlive the run,
            # since close() then unmaps the kvm_run pages those threads read.
            self.request_stop(Outcome.FATAL, status.FATAL, "the VMM's main loop ended by an exception")
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
                    if t.is_alive():
                        self.vm.vcpus[int(t.name[4:])].kick()
        self.writes.drain_pending()
        if sample:
            from .rip_report import rip_report
            self.config.log(rip_report(self.rip_samples, self.config.symbols))
        if "exits" in self.config.trace:
            self.config.log(f"pyvmm: trace: exits to the VMM per vCPU: {self.exit_counts}")
            if self.writes.ring is not None:
                self.config.log(self.writes.report())
            if self._emulation is not None:
                self.config.log(self._emulation.report())
        return self._result

    def _vcpu_thread(self, vcpu: Vcpu) -> None:
        try:
            self._vcpu_loop(vcpu)
        except BaseException as e:  # a VMM bug must still end the run with a clear status
            import traceback
            detail = "".join(traceback.format_exception(e)) if "exits" in self.config.trace else repr(e)
            try:
                dump = register_dump(vcpu, self.memory)
            except Exception as why:        # the dump must not take the status with it
                dump = f"(no register dump: {why!r})"
            self.request_stop(Outcome.FATAL, status.FATAL, f"vCPU {vcpu.index}: VMM error: {detail}\n{dump}")
        finally:
            if self._pause is not None:
                self._pause.leave()

    def _vcpu_loop(self, vcpu: Vcpu) -> None:
        """The hot path: KVM_RUN, drain the coalesced ring, dispatch port I/O; everything else goes to _exit().

        A single port access costs what the floor loop of tests/bench/bench_exits.py costs (the ctypes call, the
        exit reason, the port) plus the ring word, one dict lookup of the u.io word and the device's method: all
        else is bound before the loop, and every `if` in it jumps a short way (an EXTENDED_ARG between a compare
        and its jump keeps CPython 3.11 from specializing the compare)."""
        vcpu.attach_thread()
        # kvm_run read through typed views of its page (an index is cheaper than a ctypes .value), at the RUN_*
        # indexes above. They are locals, so they are released when the loop ends, before the page is unmapped.
        page = vcpu.page.view
        u32, i64 = page.cast("I"), page.cast("q")   # i64: all-ones is -1, a cached int
        EXIT_REASON, IO_WORD = RUN_EXIT_REASON, RUN_IO_WORD
        MMIO_DATA, MMIO_IS_WRITE = RUN_MMIO_DATA, RUN_MMIO_IS_WRITE
        fd, run, RUN = vcpu.fd, run_ioctl, int(Ioctl.RUN)   # plain ints: run_ioctl has no argtypes
        errno_now = thread_errno()          # this vCPU thread's errno, read after a KVM_RUN that failed
        # Port exits: the u.io word (direction, size, port, count) -> (method, offset, size, view, index, mask) of a
        # single access (chipset.bus.PortBus.port_cache), filled by `miss` at a word's first exit and emptied by the
        # bus when a device comes or goes; mask is 0 for a write, else what a read keeps; method None: an unclaimed
        # port (a read gives mask).
        # Its data is at PIO_DATA, where x86 KVM always puts it (data_offset = KVM_PIO_PAGE_OFFSET * PAGE_SIZE,
        # Linux arch/x86/kvm/x86.c), viewed at the access's width.
        cache = self.bus.port_cache()
        miss = self._port_miss_handler(page, cache)
        # MMIO that reaches the VMM claims nothing: a read gives all-ones, a write is ignored. Inline unless _exit()
        # has more to do: note a milestone, trace the address, or see whether a write hit the firmware ROM.
        MMIO = ExitReason.MMIO if self.config.milestones is None and "exits" not in self.config.trace else -1
        rom = self.window is not None
        # The coalesced ring's (first, last) read as one u64: nothing is pending while it equals `drained`, the
        # value it had after this loop's last drain (first == last there; a drain by another thread, or an entry
        # KVM appended, changes it). Without a ring, a zero word that never changes and so never calls drain.
        if self.writes.ring is not None:
            # drain(), not drain_pending(): an unlocked look at the ring would find it empty while another thread's
            # drain has taken the entries but not yet applied them, and this exit (a CMOS data read after a
            # buffered index write) must see them applied; drain() waits for a drain in progress.
            ring, drain = self.writes.ring.head.cast("B").cast("Q"), self.writes.drain
        else:
            ring, drain = memoryview(bytearray(8)).cast("Q"), None
        drained = -1 if drain is not None else 0
        IO = ExitReason.IO
        exits = 0
        try:
            # The stop flag is read only when KVM_RUN was interrupted: request_stop() sets it before it kicks every
            # vCPU, and a kick sets immediate_exit first, so a stopped vCPU's next KVM_RUN always fails with EINTR.
            while True:
                if run(fd, RUN, 0) < 0:
                    if self._interrupted(vcpu, page, errno_now[0]):
                        break
                    continue
                exits += 1
                if ring[0] != drained:
                    drain()
                    drained = ring[0]
                reason = u32[EXIT_REASON]
                if reason != IO:
                    if reason == MMIO:
                        if not page[MMIO_IS_WRITE]:
                            i64[MMIO_DATA] = -1
                            continue
                        if not rom:
                            continue
                    if self._exit(vcpu, reason):
                        break
                    continue
                try:
                    method, off, size, view, i, mask = cache[i64[IO_WORD]]
                except KeyError:
                    miss(i64[IO_WORD])
                    continue
                if mask:
                    view[i] = mask if method is None else method(off, size) & mask
                elif method is not None:
                    method(off, size, view[i])
        finally:
            self.bus.drop_cache(cache)
            del ring, u32, i64, miss, cache
            vcpu.detach_thread()
            self.exit_counts[vcpu.index] = exits

    def _port_miss_handler(self, page: memoryview, cache: dict) -> Callable[[int], None]:
        """The run loop's handler of a port exit its cache lacks (the first of each access, a string access, every
        one with --trace milestones, which wants every exit through pio() to note the first): the access goes
        through the bus, on the data where kvm_run says it is, checked to lie within kvm_run (the bus reports an
        unclaimed port once); then a single access of 1, 2 or 4 bytes is cached for the next time."""
        pio = self.bus.pio
        views = {1: page, 2: page.cast("H"), 4: page.cast("I")}
        u64 = page.cast("Q")
        keep = self.config.milestones is None
        if not keep:
            pio = self._first_exit_noted(pio)
        bus = self.bus

        def miss(word: int) -> None:
            direction, size, port, count = word & 0xFF, word >> 8 & 0xFF, word >> 16 & 0xFFFF, word >> 32
            off = u64[RUN_IO_DATA_OFFSET]
            end = off + size * count
            if end > len(page):
                raise KvmError("KVM_RUN", errno.EFAULT, f"I/O data {off:#x}+{size * count} past kvm_run")
            pio(port, size, count, direction, page[off:end])
            if keep and count == 1 and size in views:
                write = direction == IO_OUT
                bus.cache_access(cache, word, port, write, size, views[size], PIO_DATA // size,
                                 0 if write else (1 << 8 * size) - 1)
        return miss

    def _interrupted(self, vcpu: Vcpu, page: memoryview, err: int) -> bool:
        """KVM_RUN failed with errno err: a kick (EINTR, or EAGAIN) unless something is wrong. True when this vCPU
        must stop; else it parks while another vCPU runs an emulated locked instruction and notes its RIP when a
        sample was asked for."""
        if err not in (errno.EINTR, errno.EAGAIN):
            raise KvmError("KVM_RUN", err)
        page[RUN_IMMEDIATE_EXIT] = 0
        if self._stop.is_set():
            return True
        if self._pause is not None and self._pause.requested:
            self._pause.park()
        if self._want_sample[vcpu.index]:
            self._want_sample[vcpu.index] = False
            self.rip_samples[vcpu.index].append(vcpu.get_regs().rip)
        return False

    def _first_exit_noted(self, pio):
        """The bus's pio() that notes the reset-vector milestone at the first port exit (--trace milestones)."""
        from .milestones import RESET_VECTOR
        reach = self.config.milestones.reach

        def noted(port, size, count, is_write, data):
            reach(RESET_VECTOR)
            pio(port, size, count, is_write, data)
        return noted

    def _exit(self, vcpu: Vcpu, reason: int) -> bool:
        """Every exit but port I/O; True when this vCPU must stop."""
        run = vcpu.run
        ms = self.config.milestones
        if ms is not None and vcpu.index == 0 and reason not in (ExitReason.INTR, ExitReason.IRQ_WINDOW_OPEN):
            from .milestones import RESET_VECTOR
            if RESET_VECTOR not in ms.reached and vcpu.get_regs().rip != RESET_IP:
                ms.reach(RESET_VECTOR)
        if reason == ExitReason.MMIO:
            mmio = run.u.mmio
            if not mmio.is_write:
                ctypes.memset(ctypes.addressof(mmio.data), 0xFF, 8)   # nothing decodes there: read all-ones
            elif self.window is not None and self._rom_write(mmio.phys_addr, mmio.len):
                return False
            if "exits" in self.config.trace and mmio.phys_addr not in self._unknown_mmio:
                self._unknown_mmio.add(mmio.phys_addr)
                self.config.log(f"pyvmm: trace: unclaimed MMIO {'write' if mmio.is_write else 'read'} "
                                f"at {mmio.phys_addr:#x} ({mmio.len} bytes)")
            return False
        if reason in (ExitReason.INTR, ExitReason.IRQ_WINDOW_OPEN):
            return False
        if reason == ExitReason.SHUTDOWN:
            dump = register_dump(vcpu, self.guest)
            self.request_stop(Outcome.RESET, status.OK, f"vCPU {vcpu.index}: triple fault (KVM_EXIT_SHUTDOWN); the guest "
                                                f"resets\n{dump}")
            return True
        if reason == ExitReason.SYSTEM_EVENT:
            kind = run.u.system_event.type
            if kind == SystemEvent.SHUTDOWN:
                self.request_stop(Outcome.POWEROFF, status.OK, "guest powered off")
            elif kind == SystemEvent.RESET:
                self.request_stop(Outcome.RESET, status.OK, "guest reset")
            else:
                self.request_stop(Outcome.FATAL, status.FATAL, f"vCPU {vcpu.index}: guest crash event ({kind})\n"
                                                    + register_dump(vcpu, self.guest))
            return True
        if reason == ExitReason.HLT:
            self.request_stop(Outcome.FATAL, status.FATAL, f"vCPU {vcpu.index}: halted with no interrupt controller to wake it")
            return True
        if reason == ExitReason.INTERNAL_ERROR:
            ie = run.u.internal
            why = self._emulate(vcpu, ie)
            if why is None:
                return False
            data = " ".join(f"{ie.data[i]:#x}" for i in range(min(ie.ndata, 16)))
            what = "emulation failure" if ie.suberror == 1 else f"suberror {ie.suberror}"
            msg = f"vCPU {vcpu.index}: KVM internal error: {what} (data: {data or 'none'})" + (f"\n{why}" if why else "")
        elif reason == ExitReason.FAIL_ENTRY:
            msg = (f"vCPU {vcpu.index}: KVM failed to enter the guest (hardware entry failure reason "
                   f"{run.u.fail_entry.hardware_entry_failure_reason:#x})")
        else:
            msg = f"vCPU {vcpu.index}: unexpected KVM exit {exit_reason_name(reason)}"
        self.request_stop(Outcome.FATAL, status.FATAL, msg + "\n" + register_dump(vcpu, self.guest))
        return True

    def _rom_write(self, gpa: int, size: int) -> bool:
        """A write to the read-only firmware window or its alias: ignored, as QEMU does; told once under --trace."""
        w = self.window
        a0, asize = PC.low_rom_alias
        if not (w.contains(gpa, size) or a0 <= gpa < a0 + asize):
            return False
        if not w.reported_write:
            w.reported_write = True
            if "exits" in self.config.trace:
                self.config.log(f"pyvmm: trace: guest write to the firmware ROM at {gpa:#x} ({size} bytes) ignored "
                                f"(reported once)")
        return True

    def _emulate(self, vcpu: Vcpu, internal) -> str | None:
        """Finish an instruction KVM's emulator gave up on (vmm.emulation); None when the vCPU may re-enter."""
        with self._emulation_lock:
            if self._emulation is None:
                from .emulation import Emulation
                self._emulation = Emulation(self.guest, self.vm.vcpus, self._pause)
        return self._emulation.handle(vcpu, internal)

    # --- teardown -----------------------------------------------------------------------
    def close(self) -> None:
        """Release vCPUs, the VM, guest RAM and (if owned) /dev/kvm, in that order."""
        if self.writes is not None:
            self.writes.close()            # the VM closes the ring
        if self.vm is not None:
            self.vm.close()
            self.vm = None
        self.guest = None
        if self.memory is not None:
            if self._own_memory:
                self.memory.close()
            self.memory = None
        if self.window is not None:
            self.window.close()
            self.window = None
        if self._split_map is not None:
            self._split_map.close()
            self._split_map = None
        if self._own_kvm and self.kvm is not None:
            self.kvm.close()
            self.kvm = None

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

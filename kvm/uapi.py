"""Structures and constants of <linux/kvm.h> (x86-64) declared once as ctypes types.

Sizes are asserted in tests against the kernel's; ioctl numbers are derived from the sizes here.
"""

import ctypes
from ctypes import c_uint8, c_uint16, c_uint32, c_uint64

from .ioctl import io, ior, iow, iowr

KVM_API_VERSION = 12
PAGE_SIZE = 4096
PIO_PAGE_OFFSET = 1            # KVM_PIO_PAGE_OFFSET: the page of a vCPU's mmap that holds KVM_EXIT_IO data


class Cap:
    """KVM_CHECK_EXTENSION capability numbers this VMM asks about. (These constant classes hold plain ints, not
    enums: the `enum` module stays off the launch path; exit_reason_name() names an exit.)"""
    IRQCHIP = 0
    HLT = 1
    USER_MEMORY = 3
    SET_TSS_ADDR = 4
    EXT_CPUID = 7
    NR_VCPUS = 9
    COALESCED_MMIO = 15
    IRQ_ROUTING = 25
    PIT2 = 33
    PIT_STATE2 = 35
    SET_IDENTITY_MAP_ADDR = 37
    MAX_VCPUS = 66
    READONLY_MEM = 81
    IMMEDIATE_EXIT = 136
    COALESCED_PIO = 162


class ExitReason:
    UNKNOWN = 0
    EXCEPTION = 1
    IO = 2
    HYPERCALL = 3
    DEBUG = 4
    HLT = 5
    MMIO = 6
    IRQ_WINDOW_OPEN = 7
    SHUTDOWN = 8
    FAIL_ENTRY = 9
    INTR = 10
    SET_TPR = 11
    TPR_ACCESS = 12
    NMI = 16
    INTERNAL_ERROR = 17
    SYSTEM_EVENT = 24


def exit_reason_name(reason: int) -> str:
    """ExitReason's name for a KVM_EXIT_* number (the number itself, as text, for one not listed)."""
    return next((k for k, v in vars(ExitReason).items() if v == reason and k.isupper()), str(reason))


class SystemEvent:
    SHUTDOWN = 1
    RESET = 2
    CRASH = 3


class MpState:
    RUNNABLE = 0
    UNINITIALIZED = 1
    INIT_RECEIVED = 2
    HALTED = 3
    SIPI_RECEIVED = 4


class _S(ctypes.Structure):
    """Base: field-wise repr so register dumps and test failures are readable."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(
            f"{n}={getattr(self, n)!r}" for n, *_ in self._fields_ if not n.startswith("_")) + ")"


class kvm_userspace_memory_region(_S):
    _fields_ = [("slot", c_uint32), ("flags", c_uint32), ("guest_phys_addr", c_uint64),
                ("memory_size", c_uint64), ("userspace_addr", c_uint64)]


MEM_READONLY = 2


class kvm_regs(_S):
    _fields_ = [(n, c_uint64) for n in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class kvm_segment(_S):
    _fields_ = [("base", c_uint64), ("limit", c_uint32), ("selector", c_uint16), ("type", c_uint8),
                ("present", c_uint8), ("dpl", c_uint8), ("db", c_uint8), ("s", c_uint8), ("l", c_uint8),
                ("g", c_uint8), ("avl", c_uint8), ("unusable", c_uint8), ("_padding", c_uint8)]


class kvm_dtable(_S):
    _fields_ = [("base", c_uint64), ("limit", c_uint16), ("_padding", c_uint16 * 3)]


SEGMENT_NAMES = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")


class kvm_sregs(_S):
    _fields_ = [(n, kvm_segment) for n in SEGMENT_NAMES] + [
        ("gdt", kvm_dtable), ("idt", kvm_dtable),
        ("cr0", c_uint64), ("cr2", c_uint64), ("cr3", c_uint64), ("cr4", c_uint64), ("cr8", c_uint64),
        ("efer", c_uint64), ("apic_base", c_uint64), ("interrupt_bitmap", c_uint64 * 4)]


class kvm_fpu(_S):
    _fields_ = [("fpr", c_uint8 * 128), ("fcw", c_uint16), ("fsw", c_uint16), ("ftwx", c_uint8),
                ("_pad1", c_uint8), ("last_opcode", c_uint16), ("last_ip", c_uint64), ("last_dp", c_uint64),
                ("xmm", c_uint8 * 256), ("mxcsr", c_uint32), ("_pad2", c_uint32)]


class kvm_cpuid_entry2(_S):
    _fields_ = [("function", c_uint32), ("index", c_uint32), ("flags", c_uint32), ("eax", c_uint32),
                ("ebx", c_uint32), ("ecx", c_uint32), ("edx", c_uint32), ("_padding", c_uint32 * 3)]


def kvm_cpuid2(n: int) -> ctypes.Structure:
    """A kvm_cpuid2 with room for n entries (the kernel struct ends in a flexible array)."""
    class kvm_cpuid2_n(_S):
        _fields_ = [("nent", c_uint32), ("_padding", c_uint32), ("entries", kvm_cpuid_entry2 * n)]
    return kvm_cpuid2_n()


class kvm_msr_entry(_S):
    _fields_ = [("index", c_uint32), ("_reserved", c_uint32), ("data", c_uint64)]


def kvm_msrs(n: int) -> ctypes.Structure:
    """A kvm_msrs with room for n entries."""
    class kvm_msrs_n(_S):
        _fields_ = [("nmsrs", c_uint32), ("_pad", c_uint32), ("entries", kvm_msr_entry * n)]
    return kvm_msrs_n()


class kvm_lapic_state(_S):
    _fields_ = [("regs", ctypes.c_char * 1024)]


class kvm_pit_config(_S):
    _fields_ = [("flags", c_uint32), ("_pad", c_uint32 * 15)]


PIT_SPEAKER_DUMMY = 1


class kvm_pit_channel_state(_S):
    """One 8254 counter as KVM keeps it (arch/x86/include/uapi/asm/kvm.h); count_load_time is CLOCK_MONOTONIC ns."""
    _fields_ = [("count", c_uint32), ("latched_count", c_uint16), ("count_latched", c_uint8),
                ("status_latched", c_uint8), ("status", c_uint8), ("read_state", c_uint8), ("write_state", c_uint8),
                ("write_latch", c_uint8), ("rw_mode", c_uint8), ("mode", c_uint8), ("bcd", c_uint8), ("gate", c_uint8),
                ("count_load_time", ctypes.c_int64)]


class kvm_pit_state2(_S):
    """The in-kernel PIT's state (KVM_GET_PIT2 / KVM_SET_PIT2)."""
    _fields_ = [("channels", kvm_pit_channel_state * 3), ("flags", c_uint32), ("_reserved", c_uint32 * 9)]


PIT_FLAGS_HPET_LEGACY = 1
PIT_FLAGS_SPEAKER_DATA_ON = 2       # port 0x61 bit 1 as the guest last wrote it


class kvm_irq_level(_S):
    _fields_ = [("irq", c_uint32), ("level", c_uint32)]


class kvm_irq_routing_entry(_S):
    """One GSI route; u holds kvm_irq_routing_irqchip {irqchip, pin} for IRQ_ROUTING_IRQCHIP (the union is 32 bytes)."""
    _fields_ = [("gsi", c_uint32), ("type", c_uint32), ("flags", c_uint32), ("pad", c_uint32),
                ("irqchip", c_uint32), ("pin", c_uint32), ("_union_rest", c_uint32 * 6)]


IRQ_ROUTING_IRQCHIP = 1
IRQCHIP_PIC_MASTER, IRQCHIP_PIC_SLAVE, IRQCHIP_IOAPIC = 0, 1, 2


def kvm_irq_routing(n: int):
    """struct kvm_irq_routing with room for n entries (a flexible array in C)."""
    class _Routing(_S):
        _fields_ = [("nr", c_uint32), ("flags", c_uint32), ("entries", kvm_irq_routing_entry * n)]
    return _Routing()


class kvm_coalesced_mmio_zone(_S):
    _fields_ = [("addr", c_uint64), ("size", c_uint32), ("pio", c_uint32)]


class kvm_coalesced_mmio(_S):
    _fields_ = [("phys_addr", c_uint64), ("len", c_uint32), ("pio", c_uint32), ("data", c_uint8 * 8)]


class kvm_coalesced_mmio_ring(_S):
    """The ring's header; kvm_coalesced_mmio entries follow it to the end of its page."""
    _fields_ = [("first", c_uint32), ("last", c_uint32)]


class kvm_mp_state(_S):
    _fields_ = [("mp_state", c_uint32)]


KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1      # kvm_cpuid_entry2.flags: the index (subleaf) selects the entry


class kvm_translation(_S):
    _fields_ = [("linear_address", c_uint64), ("physical_address", c_uint64), ("valid", c_uint8),
                ("writeable", c_uint8), ("usermode", c_uint8), ("_pad", c_uint8 * 5)]


class _kvm_exception(_S):
    _fields_ = [("injected", c_uint8), ("nr", c_uint8), ("has_error_code", c_uint8), ("pending", c_uint8),
                ("error_code", c_uint32)]


class _kvm_interrupt(_S):
    _fields_ = [("injected", c_uint8), ("nr", c_uint8), ("soft", c_uint8), ("shadow", c_uint8)]


class kvm_vcpu_events(_S):
    """Pending and injected events (KVM_GET/SET_VCPU_EVENTS); the emulator injects the faults of the
    instructions it finishes through `exception`."""
    _fields_ = [("exception", _kvm_exception), ("interrupt", _kvm_interrupt), ("nmi", c_uint8 * 4),
                ("sipi_vector", c_uint32), ("flags", c_uint32), ("smi", c_uint8 * 4), ("triple_fault", c_uint8),
                ("_reserved", c_uint8 * 26), ("exception_has_payload", c_uint8), ("exception_payload", c_uint64)]


VCPUEVENT_VALID_SHADOW = 0x4
VCPUEVENT_VALID_PAYLOAD = 0x10


class kvm_xsave(_S):
    """The XSAVE area in the standard (non-compacted) format, as XSAVE writes it."""
    _fields_ = [("region", c_uint8 * 4096)]


class kvm_xcr(_S):
    _fields_ = [("xcr", c_uint32), ("_reserved", c_uint32), ("value", c_uint64)]


class kvm_xcrs(_S):
    _fields_ = [("nr_xcrs", c_uint32), ("flags", c_uint32), ("xcrs", kvm_xcr * 16), ("_padding", c_uint64 * 16)]


class _kvm_run_io(_S):
    _fields_ = [("direction", c_uint8), ("size", c_uint8), ("port", c_uint16), ("count", c_uint32),
                ("data_offset", c_uint64)]


class _kvm_run_mmio(_S):
    _fields_ = [("phys_addr", c_uint64), ("data", c_uint8 * 8), ("len", c_uint32), ("is_write", c_uint8)]


class _kvm_run_internal(_S):
    _fields_ = [("suberror", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class _kvm_run_system_event(_S):
    _fields_ = [("type", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class _kvm_run_fail_entry(_S):
    _fields_ = [("hardware_entry_failure_reason", c_uint64), ("cpu", c_uint32)]


class _kvm_run_exit_union(ctypes.Union):
    _fields_ = [("io", _kvm_run_io), ("mmio", _kvm_run_mmio), ("internal", _kvm_run_internal),
                ("system_event", _kvm_run_system_event), ("fail_entry", _kvm_run_fail_entry),
                ("_pad", ctypes.c_char * 256)]


class kvm_run(_S):
    """The shared exit page header; only used for its offsets and in slow paths (register dumps)."""
    _fields_ = [("request_interrupt_window", c_uint8), ("immediate_exit", c_uint8), ("_pad1", c_uint8 * 6),
                ("exit_reason", c_uint32), ("ready_for_interrupt_injection", c_uint8), ("if_flag", c_uint8),
                ("flags", c_uint16), ("cr8", c_uint64), ("apic_base", c_uint64), ("u", _kvm_run_exit_union),
                ("kvm_valid_regs", c_uint64), ("kvm_dirty_regs", c_uint64)]


IO_IN, IO_OUT = 0, 1


def field_offset(struct: type, path: str) -> tuple[int, int]:
    """(offset, size) in bytes of a dotted field path such as "u.io.port": C's offsetof() through nested
    structures and unions, so code that reads a shared page by offset takes it from the declaration above."""
    offset, size = 0, 0
    for name in path.split("."):
        fld = getattr(struct, name)           # a ctypes CField: offset and size within its container
        offset += fld.offset
        size = fld.size
        struct = dict((f[0], f[1]) for f in struct._fields_)[name]
    return offset, size


class Ioctl:
    """Request numbers, computed from the structure sizes above as _IOW/_IOR/_IOWR do."""
    GET_API_VERSION = io(0x00)
    CREATE_VM = io(0x01)
    CHECK_EXTENSION = io(0x03)
    GET_VCPU_MMAP_SIZE = io(0x04)
    GET_SUPPORTED_CPUID = iowr(0x05, 8)
    CREATE_VCPU = io(0x41)
    SET_USER_MEMORY_REGION = iow(0x46, ctypes.sizeof(kvm_userspace_memory_region))
    SET_TSS_ADDR = io(0x47)
    SET_IDENTITY_MAP_ADDR = iow(0x48, 8)
    CREATE_IRQCHIP = io(0x60)
    IRQ_LINE = iow(0x61, ctypes.sizeof(kvm_irq_level))
    REGISTER_COALESCED_MMIO = iow(0x67, ctypes.sizeof(kvm_coalesced_mmio_zone))
    UNREGISTER_COALESCED_MMIO = iow(0x68, ctypes.sizeof(kvm_coalesced_mmio_zone))
    SET_GSI_ROUTING = iow(0x6A, 8)
    CREATE_PIT2 = iow(0x77, ctypes.sizeof(kvm_pit_config))
    RUN = io(0x80)
    GET_REGS = ior(0x81, ctypes.sizeof(kvm_regs))
    SET_REGS = iow(0x82, ctypes.sizeof(kvm_regs))
    GET_SREGS = ior(0x83, ctypes.sizeof(kvm_sregs))
    SET_SREGS = iow(0x84, ctypes.sizeof(kvm_sregs))
    TRANSLATE = iowr(0x85, ctypes.sizeof(kvm_translation))
    GET_MSRS = iowr(0x88, 8)
    SET_MSRS = iow(0x89, 8)
    GET_FPU = ior(0x8C, ctypes.sizeof(kvm_fpu))
    SET_FPU = iow(0x8D, ctypes.sizeof(kvm_fpu))
    GET_LAPIC = ior(0x8E, ctypes.sizeof(kvm_lapic_state))
    SET_LAPIC = iow(0x8F, ctypes.sizeof(kvm_lapic_state))
    SET_CPUID2 = iow(0x90, 8)
    GET_CPUID2 = iowr(0x91, 8)
    GET_MP_STATE = ior(0x98, ctypes.sizeof(kvm_mp_state))
    SET_MP_STATE = iow(0x99, ctypes.sizeof(kvm_mp_state))
    GET_PIT2 = ior(0x9F, ctypes.sizeof(kvm_pit_state2))
    SET_PIT2 = iow(0xA0, ctypes.sizeof(kvm_pit_state2))
    GET_VCPU_EVENTS = ior(0x9F, ctypes.sizeof(kvm_vcpu_events))
    SET_VCPU_EVENTS = iow(0xA0, ctypes.sizeof(kvm_vcpu_events))
    GET_XSAVE = ior(0xA4, ctypes.sizeof(kvm_xsave))
    SET_XSAVE = iow(0xA5, ctypes.sizeof(kvm_xsave))
    GET_XCRS = ior(0xA6, ctypes.sizeof(kvm_xcrs))
    SET_XCRS = iow(0xA7, ctypes.sizeof(kvm_xcrs))


"""The ctypes mirror of <linux/kvm.h> must match the kernel ABI byte for byte, or every ioctl corrupts memory."""

import ctypes

import pytest

from kvm import uapi
from kvm.uapi import Ioctl


def test_struct_sizes_match_the_kernel_abi():
    expected = {uapi.kvm_regs: 144, uapi.kvm_sregs: 312, uapi.kvm_segment: 24, uapi.kvm_dtable: 16,
                uapi.kvm_fpu: 416, uapi.kvm_cpuid_entry2: 40, uapi.kvm_msr_entry: 16,
                uapi.kvm_lapic_state: 1024, uapi.kvm_pit_config: 64, uapi.kvm_irq_level: 8,
                uapi.kvm_coalesced_mmio_zone: 16, uapi.kvm_coalesced_mmio: 24,
                uapi.kvm_userspace_memory_region: 32, uapi.kvm_translation: 24, uapi.kvm_mp_state: 4,
                uapi.kvm_irq_routing_entry: 48, uapi.kvm_coalesced_mmio_ring: 8, uapi.kvm_vcpu_events: 64,
                uapi.kvm_xsave: 4096, uapi.kvm_xcrs: 392,
                uapi.kvm_pit_channel_state: 24, uapi.kvm_pit_state2: 112}
    for struct, size in expected.items():
        assert ctypes.sizeof(struct) == size, struct.__name__


def test_kvm_run_offsets():
    r = uapi.kvm_run
    assert r.immediate_exit.offset == 1
    assert r.exit_reason.offset == 8
    assert r.cr8.offset == 16 and r.apic_base.offset == 24
    assert r.u.offset == 32
    assert r.kvm_valid_regs.offset == 288 and r.kvm_dirty_regs.offset == 296
    io = uapi._kvm_run_io
    assert (io.direction.offset, io.size.offset, io.port.offset, io.count.offset, io.data_offset.offset) == (0, 1, 2, 4, 8)
    mmio = uapi._kvm_run_mmio
    assert (mmio.data.offset, mmio.len.offset, mmio.is_write.offset) == (8, 16, 20)


def test_field_offset_walks_nested_fields_like_offsetof():
    # offsetof(struct kvm_run, io.port) etc. from <linux/kvm.h>: the union starts at byte 32.
    f = uapi.field_offset
    assert f(uapi.kvm_run, "exit_reason") == (8, 4)
    assert f(uapi.kvm_run, "u.io.direction") == (32, 1) and f(uapi.kvm_run, "u.io.size") == (33, 1)
    assert f(uapi.kvm_run, "u.io.port") == (34, 2) and f(uapi.kvm_run, "u.io.count") == (36, 4)
    assert f(uapi.kvm_run, "u.io.data_offset") == (40, 8)
    assert f(uapi.kvm_run, "u.mmio.is_write") == (52, 1)
    assert f(uapi.kvm_coalesced_mmio, "data") == (16, 8)


def test_run_loop_indexes_come_from_the_declaration():
    from vmm import machine
    assert (machine.RUN_IMMEDIATE_EXIT, machine.RUN_EXIT_REASON) == (1, 2)          # bytes, u32s
    assert (machine.RUN_IO_DIRECTION, machine.RUN_IO_SIZE) == (32, 33)               # bytes
    assert (machine.RUN_IO_PORT, machine.RUN_IO_COUNT, machine.RUN_IO_DATA_OFFSET) == (17, 9, 5)   # u16, u32, u64
    assert machine.PIO_DATA == 4096
    with pytest.raises(AssertionError, match="not a 4-byte index"):
        machine._run_index("u.io.port", 4)


def test_pit_state2_layout():
    # struct kvm_pit_channel_state / kvm_pit_state2, arch/x86/include/uapi/asm/kvm.h
    c = uapi.kvm_pit_channel_state
    assert (c.latched_count.offset, c.count_latched.offset, c.status.offset, c.write_latch.offset) == (4, 6, 8, 11)
    assert (c.mode.offset, c.gate.offset, c.count_load_time.offset) == (13, 15, 16)
    assert (uapi.kvm_pit_state2.flags.offset, uapi.kvm_pit_state2._reserved.offset) == (72, 76)


def test_sregs_layout():
    s = uapi.kvm_sregs
    assert (s.cs.offset, s.tr.offset, s.gdt.offset, s.idt.offset) == (0, 144, 192, 208)
    assert (s.cr0.offset, s.cr3.offset, s.efer.offset, s.apic_base.offset, s.interrupt_bitmap.offset) == (224, 240, 264, 272, 280)
    assert uapi.kvm_fpu.mxcsr.offset == 408 and uapi.kvm_fpu.xmm.offset == 160 - 8


def test_ioctl_numbers_match_the_published_table():
    # Values from the kernel headers (<linux/kvm.h>, _IO/_IOR/_IOW/_IOWR with KVMIO = 0xAE).
    table = {"GET_API_VERSION": 0xAE00, "CREATE_VM": 0xAE01, "CHECK_EXTENSION": 0xAE03,
             "GET_VCPU_MMAP_SIZE": 0xAE04, "GET_SUPPORTED_CPUID": 0xC008AE05,
             "CREATE_VCPU": 0xAE41, "SET_USER_MEMORY_REGION": 0x4020AE46, "SET_TSS_ADDR": 0xAE47,
             "SET_IDENTITY_MAP_ADDR": 0x4008AE48, "CREATE_IRQCHIP": 0xAE60, "IRQ_LINE": 0x4008AE61,
             "REGISTER_COALESCED_MMIO": 0x4010AE67,
             "CREATE_PIT2": 0x4040AE77, "RUN": 0xAE80, "GET_REGS": 0x8090AE81, "SET_REGS": 0x4090AE82,
             "GET_SREGS": 0x8138AE83, "SET_SREGS": 0x4138AE84, "TRANSLATE": 0xC018AE85, "GET_MSRS": 0xC008AE88,
             "SET_MSRS": 0x4008AE89, "GET_FPU": 0x81A0AE8C, "SET_FPU": 0x41A0AE8D, "GET_LAPIC": 0x8400AE8E,
             "SET_LAPIC": 0x4400AE8F, "SET_CPUID2": 0x4008AE90, "GET_CPUID2": 0xC008AE91,
             "GET_MP_STATE": 0x8004AE98, "SET_MP_STATE": 0x4004AE99, "SET_GSI_ROUTING": 0x4008AE6A,
             "GET_VCPU_EVENTS": 0x8040AE9F, "SET_VCPU_EVENTS": 0x4040AEA0, "GET_XSAVE": 0x9000AEA4,
             "SET_XSAVE": 0x5000AEA5, "GET_XCRS": 0x8188AEA6, "SET_XCRS": 0x4188AEA7,
             "GET_PIT2": 0x8070AE9F, "SET_PIT2": 0x4070AEA0}
    for name, number in table.items():
        assert getattr(Ioctl, name) == number, name

"""The KVM binding against the real /dev/kvm: errors name their ioctl, state round-trips, nothing leaks."""

import os

import pytest

from kvm import Kvm, KvmError, KvmUnavailable, kvm_usable
from kvm.uapi import Cap, MpState

pytestmark = pytest.mark.usefixtures("kvm_ok")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_capabilities_this_vmm_relies_on():
    with Kvm() as k:
        assert k.check_extension(Cap.USER_MEMORY)
        assert k.check_extension(Cap.IRQCHIP)
        assert k.check_extension(Cap.PIT2)
        assert k.check_extension(Cap.IMMEDIATE_EXIT)
        assert k.vcpu_mmap_size >= 4096
        cpuid = k.supported_cpuid()
        assert any(e.function == 0 for e in cpuid) and any(e.function == 1 for e in cpuid)




def test_failed_ioctl_names_itself_real():
    with Kvm() as k, k.create_vm() as vm:
        with pytest.raises(KvmError) as e:
            vm.set_user_memory_region(0, 0x1000, 0x1001, 0x7000_0000_1000)  # size not page-aligned
        assert "KVM_SET_USER_MEMORY_REGION" in str(e.value)


def test_missing_device_is_a_clear_error():
    with pytest.raises(KvmUnavailable) as e:
        Kvm("/nonexistent/kvm")
    assert "not available" in str(e.value)
    assert "not available" in kvm_usable("/nonexistent/kvm")


def test_register_round_trip():
    with Kvm() as k, k.create_vm() as vm:
        vm.create_irqchip()
        v = vm.create_vcpu(0)
        r = v.get_regs()
        assert r.rip == 0xFFF0                      # architectural reset state
        r.rax, r.r15, r.rip, r.rflags = 0x1122334455667788, 42, 0x1000, 0x2
        v.set_regs(r)
        back = v.get_regs()
        assert (back.rax, back.r15, back.rip) == (0x1122334455667788, 42, 0x1000)
        s = v.get_sregs()
        assert s.cs.base == 0xFFFF0000
        s.cr3 = 0x9000
        v.set_sregs(s)
        assert v.get_sregs().cr3 == 0x9000
        v.set_msrs({0x174: 0x10})
        assert v.get_msrs([0x174]) == {0x174: 0x10}
        assert len(v.get_lapic()) == 1024
        assert v.get_mp_state() == MpState.RUNNABLE


def test_no_fd_leak_after_1000_create_destroy_cycles():
    with Kvm() as k:
        for _ in range(3):   # warm up lazily opened fds (libc, caches)
            with k.create_vm() as vm:
                vm.create_vcpu(0)
        before = _open_fds()
        for _ in range(1000):
            with k.create_vm() as vm:
                vm.create_vcpu(0)
        assert _open_fds() == before
    for _ in range(50):
        with Kvm():
            pass
    assert _open_fds() == before - 1

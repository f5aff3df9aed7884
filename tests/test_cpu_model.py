"""--cpu host,-FEATURE: parsing, dependency closure, the CPUID KVM is given, and what a guest sees."""

from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest

from kvm.uapi import kvm_cpuid_entry2
from vmm.cpu_model import FEATURES, apply_cpu_model, parse_cpu


def _entry(function: int, index: int = 0, **regs: int) -> kvm_cpuid_entry2:
    e = kvm_cpuid_entry2()
    e.function, e.index = function, index
    for k, v in regs.items():
        setattr(e, k, v)
    return e


def test_clearing_xsave_takes_avx_and_the_xsave_leaf_with_it():
    model = parse_cpu("host,-xsave")
    assert {"xsave", "avx", "avx2", "avx512f", "avx512vl", "xsaveopt", "xsaves"} <= model.clear
    entries = [_entry(1, ecx=0xFFFFFFFF, edx=0xFFFFFFFF), _entry(7, ebx=0xFFFFFFFF, ecx=0xFFFFFFFF),
               _entry(0xD, 0, eax=7, ebx=0x340), _entry(0xD, 1, eax=0xF)]
    apply_cpu_model(entries, model)
    assert not entries[0].ecx >> 26 & 1 and not entries[0].ecx >> 28 & 1      # xsave, avx
    assert entries[0].ecx >> 23 & 1                                            # popcnt stays
    assert not entries[1].ebx >> 5 & 1 and not entries[1].ebx >> 16 & 1       # avx2, avx512f
    assert (entries[2].eax, entries[2].ebx, entries[3].eax) == (0, 0, 0)
    assert entries[0].edx == 0xFFFFFFFF


def test_names_follow_proc_cpuinfo_and_qemu_spellings():
    assert parse_cpu("host,-sse4.2").clear >= {"sse4_2", "popcnt", "aes"}
    assert parse_cpu("host,-sse4-2").clear == parse_cpu("host,-sse4_2").clear
    assert "cx16" in parse_cpu("host,-cmpxchg16b").clear
    assert parse_cpu("host") == parse_cpu("max")


@pytest.mark.parametrize("spec, words", [("kvm64", "model must be 'host'"), ("host,xsave", "+FEATURE or -FEATURE"),
                                         ("host,-frobnicate", "unknown CPU feature"), ("host,-lm", "cannot run"),
                                         ("host,-sse4_2,+popcnt", "both required and cleared")])
def test_bad_specs_are_refused_with_a_reason(spec, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_cpu(spec)


def test_a_required_feature_the_host_lacks_is_refused():
    with pytest.raises(ValueError, match=r"\+x2apic asked for"):
        apply_cpu_model([_entry(1, ecx=0)], parse_cpu("host,+x2apic"))


def test_every_feature_names_a_real_register_bit():
    for name, (leaf, sub, reg, bit) in FEATURES.items():
        assert reg in ("eax", "ebx", "ecx", "edx") and 0 <= bit < 32, name


def test_cli_refuses_a_bad_cpu_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "vmm", "--kernel", str(tmp_path / "none"), "--cpu", "host,-bogus"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "unknown CPU feature 'bogus'" in p.stderr


def _seen(run) -> tuple[int, int, int, int]:
    assert run.status == 0x21, run.result
    return struct.unpack("<4I", run.serial[:16])


@pytest.mark.usefixtures("kvm_ok")
def test_kvm_is_handed_the_masked_cpuid(monkeypatch):
    """Every vCPU's KVM_SET_CPUID2 table has the cleared bits off and the rest of the host's bits intact."""
    from kvm import Vcpu
    from vmm.machine import Machine, MachineConfig
    handed: list[dict] = []
    real = Vcpu.set_cpuid
    monkeypatch.setattr(Vcpu, "set_cpuid", lambda self, entries: (handed.append(
        {(e.function, e.index): (e.ecx, e.edx) for e in entries}), real(self, entries))[1])
    with Machine(MachineConfig(memory=16 << 20, cpus=2)):
        pass
    with Machine(MachineConfig(memory=16 << 20, cpus=2, cpu=parse_cpu("host,-xsave,-popcnt"))):
        pass
    plain, masked = handed[0][(1, 0)], handed[2][(1, 0)]
    assert len(handed) == 4 and handed[3][(1, 0)] == masked
    assert masked[0] == plain[0] & ~(1 << 26 | 1 << 23 | 1 << 28 | 1 << 12 | 1 << 29)   # xsave popcnt avx fma f16c
    assert masked[1] == plain[1]


@pytest.mark.usefixtures("kvm_ok")
def test_the_guest_sees_the_masked_cpuid(guest):
    """On a KVM that honours KVM_SET_CPUID2 the guest's CPUID lacks the cleared features and keeps the rest."""
    plain = _seen(guest("cpuid.S"))
    masked = _seen(guest("cpuid.S", cpu=parse_cpu("host,-xsave,-popcnt")))
    if plain[0] >> 26 & 1 and masked[0] >> 26 & 1:
        pytest.skip("this KVM shows the guest the host's CPUID whatever KVM_SET_CPUID2 says (kvm_pvm); "
                    "keep a Linux guest off features with noxsave/clearcpuid= instead")
    assert not masked[0] >> 26 & 1 and not masked[0] >> 23 & 1
    assert masked[1] == plain[1]

"""`--cpu host[,-FEATURE|,+FEATURE...]`: the CPUID features a guest is offered, QEMU's way of naming them.

The base is always `host` (what KVM reports it can virtualise); `-name` clears a feature and everything that
depends on it (clearing xsave takes AVX and friends with it, as Linux's own clearcpuid does), `+name` keeps a
feature KVM supports and refuses one it does not, so a user never believes a guest has what it cannot have.
Names are Linux's /proc/cpuinfo flags, which QEMU accepts too (underscores or dashes).
"""

from __future__ import annotations

from loaders.record import record

# name: (leaf, subleaf, register, bit). Register is one of "eax", "ebx", "ecx", "edx".
FEATURES: dict[str, tuple[int, int, str, int]] = {
    # leaf 1 ECX
    "sse3": (1, 0, "ecx", 0), "pclmulqdq": (1, 0, "ecx", 1), "monitor": (1, 0, "ecx", 3), "vmx": (1, 0, "ecx", 5),
    "ssse3": (1, 0, "ecx", 9), "fma": (1, 0, "ecx", 12), "cx16": (1, 0, "ecx", 13), "pdcm": (1, 0, "ecx", 15),
    "pcid": (1, 0, "ecx", 17), "sse4_1": (1, 0, "ecx", 19), "sse4_2": (1, 0, "ecx", 20), "x2apic": (1, 0, "ecx", 21),
    "movbe": (1, 0, "ecx", 22), "popcnt": (1, 0, "ecx", 23), "tsc_deadline_timer": (1, 0, "ecx", 24),
    "aes": (1, 0, "ecx", 25), "xsave": (1, 0, "ecx", 26), "avx": (1, 0, "ecx", 28), "f16c": (1, 0, "ecx", 29),
    "rdrand": (1, 0, "ecx", 30), "hypervisor": (1, 0, "ecx", 31),
    # leaf 1 EDX
    "fpu": (1, 0, "edx", 0), "vme": (1, 0, "edx", 1), "pse": (1, 0, "edx", 3), "tsc": (1, 0, "edx", 4),
    "msr": (1, 0, "edx", 5), "pae": (1, 0, "edx", 6), "mce": (1, 0, "edx", 7), "cx8": (1, 0, "edx", 8),
    "apic": (1, 0, "edx", 9), "sep": (1, 0, "edx", 11), "mtrr": (1, 0, "edx", 12), "pge": (1, 0, "edx", 13),
    "mca": (1, 0, "edx", 14), "cmov": (1, 0, "edx", 15), "pat": (1, 0, "edx", 16), "pse36": (1, 0, "edx", 17),
    "clflush": (1, 0, "edx", 19), "mmx": (1, 0, "edx", 23), "fxsr": (1, 0, "edx", 24), "sse": (1, 0, "edx", 25),
    "sse2": (1, 0, "edx", 26), "ht": (1, 0, "edx", 28),
    # leaf 7 subleaf 0
    "fsgsbase": (7, 0, "ebx", 0), "bmi1": (7, 0, "ebx", 3), "hle": (7, 0, "ebx", 4), "avx2": (7, 0, "ebx", 5),
    "smep": (7, 0, "ebx", 7), "bmi2": (7, 0, "ebx", 8), "erms": (7, 0, "ebx", 9), "invpcid": (7, 0, "ebx", 10),
    "rtm": (7, 0, "ebx", 11), "avx512f": (7, 0, "ebx", 16), "avx512dq": (7, 0, "ebx", 17),
    "rdseed": (7, 0, "ebx", 18), "adx": (7, 0, "ebx", 19), "smap": (7, 0, "ebx", 20),
    "avx512ifma": (7, 0, "ebx", 21), "clflushopt": (7, 0, "ebx", 23), "clwb": (7, 0, "ebx", 24),
    "avx512cd": (7, 0, "ebx", 28), "sha_ni": (7, 0, "ebx", 29), "avx512bw": (7, 0, "ebx", 30),
    "avx512vl": (7, 0, "ebx", 31),
    "avx512vbmi": (7, 0, "ecx", 1), "umip": (7, 0, "ecx", 2), "pku": (7, 0, "ecx", 3),
    "avx512_vbmi2": (7, 0, "ecx", 6), "gfni": (7, 0, "ecx", 8), "vaes": (7, 0, "ecx", 9),
    "vpclmulqdq": (7, 0, "ecx", 10), "avx512_vnni": (7, 0, "ecx", 11), "avx512_bitalg": (7, 0, "ecx", 12),
    "avx512_vpopcntdq": (7, 0, "ecx", 14), "la57": (7, 0, "ecx", 16), "rdpid": (7, 0, "ecx", 22),
    "movdiri": (7, 0, "ecx", 27), "movdir64b": (7, 0, "ecx", 28),
    "fsrm": (7, 0, "edx", 4), "serialize": (7, 0, "edx", 14), "arch_capabilities": (7, 0, "edx", 29),
    # leaf 0xD subleaf 1
    "xsaveopt": (0xD, 1, "eax", 0), "xsavec": (0xD, 1, "eax", 1), "xgetbv1": (0xD, 1, "eax", 2),
    "xsaves": (0xD, 1, "eax", 3),
    # leaf 0x80000001
    "lahf_lm": (0x80000001, 0, "ecx", 0), "abm": (0x80000001, 0, "ecx", 5), "sse4a": (0x80000001, 0, "ecx", 6),
    "3dnowprefetch": (0x80000001, 0, "ecx", 8),
    "syscall": (0x80000001, 0, "edx", 11), "nx": (0x80000001, 0, "edx", 20), "pdpe1gb": (0x80000001, 0, "edx", 26),
    "rdtscp": (0x80000001, 0, "edx", 27), "lm": (0x80000001, 0, "edx", 29),
}

# Clearing the key clears these too (the instructions or state they need are gone).
DEPENDENTS: dict[str, tuple[str, ...]] = {
    "xsave": ("avx", "xsaveopt", "xsavec", "xgetbv1", "xsaves"),
    "avx": ("avx2", "fma", "f16c", "avx512f", "vaes", "vpclmulqdq"),
    "avx512f": ("avx512dq", "avx512ifma", "avx512cd", "avx512bw", "avx512vl", "avx512vbmi", "avx512_vbmi2",
                "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq"),
    "sse": ("sse2",), "sse2": ("sse3",), "sse3": ("ssse3", "pclmulqdq"), "ssse3": ("sse4_1",),
    "sse4_1": ("sse4_2",), "sse4_2": ("avx", "aes", "popcnt"), "pcid": ("invpcid",), "fxsr": ("sse",),
    "apic": ("x2apic", "tsc_deadline_timer"),
}
ESSENTIAL = frozenset({"lm", "pae", "apic", "msr", "tsc", "fpu", "fxsr", "sse", "sse2", "cx8", "pge", "syscall",
                       "nx", "cmov", "pat", "mtrr"})   # an x86-64 guest cannot run without them


@record(frozen=True)
class CpuModel:
    """What `--cpu` asked for: features to clear (closed over DEPENDENTS) and features that must be present."""
    clear: frozenset[str] = frozenset()
    require: frozenset[str] = frozenset()


ALIASES = {"pni": "sse3", "lzcnt": "abm", "pclmul": "pclmulqdq", "cmpxchg16b": "cx16", "sha": "sha_ni"}


def _canonical(name: str) -> str:
    n = name.strip().lower().replace("-", "_").replace(".", "_")
    return ALIASES.get(n, n)


def parse_cpu(spec: str) -> CpuModel:
    """`host`, `host,-xsave,-popcnt,+x2apic`; ValueError (one line) for another model or an unknown feature."""
    parts = [p.strip() for p in spec.split(",")]
    if parts[0] not in ("host", "max"):
        raise ValueError(f"--cpu {spec!r}: the model must be 'host' (KVM's supported CPUID), then ,-FEATURE or "
                         f",+FEATURE")
    clear: set[str] = set()
    require: set[str] = set()
    for p in parts[1:]:
        if len(p) < 2 or p[0] not in "+-":
            raise ValueError(f"--cpu: {p!r} must be +FEATURE or -FEATURE")
        name = _canonical(p[1:])
        if name not in FEATURES:
            raise ValueError(f"--cpu: unknown CPU feature {p[1:]!r} (names as in /proc/cpuinfo, e.g. xsave, popcnt)")
        (clear if p[0] == "-" else require).add(name)
    todo = list(clear)
    while todo:
        for dep in DEPENDENTS.get(todo.pop(), ()):
            if dep not in clear:
                clear.add(dep)
                todo.append(dep)
    if clear & require:
        raise ValueError(f"--cpu: {', '.join(sorted(clear & require))} both required and cleared")
    if clear & ESSENTIAL:
        raise ValueError(f"--cpu: an x86-64 guest cannot run without {', '.join(sorted(clear & ESSENTIAL))}")
    return CpuModel(frozenset(clear), frozenset(require))


def apply_cpu_model(entries: list, model: CpuModel) -> None:
    """Clear the model's features in KVM cpuid entries (in place); ValueError if a required one is absent."""
    by_leaf = {(e.function, e.index): e for e in entries}
    for name in model.require:
        leaf, sub, reg, bit = FEATURES[name]
        e = by_leaf.get((leaf, sub))
        if e is None or not getattr(e, reg) >> bit & 1:
            raise ValueError(f"--cpu: +{name} asked for, but this host's KVM cannot offer it")
    for name in model.clear:
        leaf, sub, reg, bit = FEATURES[name]
        e = by_leaf.get((leaf, sub))
        if e is not None:
            setattr(e, reg, getattr(e, reg) & ~(1 << bit))
    if "xsave" in model.clear:
        for e in entries:
            if e.function == 0xD:                 # no XSAVE state components either
                e.eax = e.ebx = e.ecx = e.edx = 0

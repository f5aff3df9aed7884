"""A tiny Linux kernel and a busybox initramfs, built here, booted with pyvmm (and, with --qemu, with QEMU).

    python examples/tiny_linux.py                 build (cached) and boot with pyvmm --kernel, print the console
    python examples/tiny_linux.py --runs 5 --qemu time pyvmm and QEMU -M microvm side by side, alternating

The kernel comes from Debian's linux-source-6.1 (apt-get install linux-source-6.1 flex bison bc libelf-dev
libssl-dev busybox-static): tinyconfig plus a 64-bit serial console, initramfs, ACPI, kvmclock, the PVH entry and
PCI (ACPICA needs it); no modules, network, block or JUMP_LABEL. On a KVM that emulates guest ring-0 code (the
development machines' kvm_pvm) two instructions the emulator lacks are taken out of the source: the INT3 self-test
in alternative_instructions() and the FWAIT in fpu__drop(); the kernel words in EMULATOR_WORDS keep the kernel off
the rest (xsave, popcnt, cmpxchg16b...). The initramfs is written by loaders.linux.cpio (no root needed for
/dev/console): /init prints PYVMM-BOOT-OK and powers off. Where guest user mode cannot run (kvm_pvm) the furthest a
kernel gets is `Run /init as init process`, then `Attempted to kill init`; with panic=-1 reboot=k it resets through
the i8042 and pyvmm --no-reboot exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loaders.linux import cpio  # noqa: E402

SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
BUSYBOX = Path("/bin/busybox")
CACHE = Path(os.environ.get("PYVMM_TINY_LINUX_CACHE", Path.home() / ".cache" / "pyvmm" / "tiny-linux"))
BUILD_PACKAGES = ["linux-source-6.1", "flex", "bison", "bc", "libelf-dev", "libssl-dev", "busybox-static", "make",
                  "gcc", "xz-utils"]

# Options on top of tinyconfig: what a serial-console, initramfs-only, ACPI, KVM guest needs; no more. PCI is one of
# them: Linux 6.1's ACPICA installs a default PCI_Config region handler before it loads any table, and without
# CONFIG_PCI (no ACPI_PCI_CONFIGURED, include/acpi/platform/aclinux.h) that install fails with AE_BAD_PARAMETER
# (drivers/acpi/acpica/evhandler.c) and the kernel prints "ACPI: Unable to load the System Description Tables"
# whatever the tables say.
ENABLE = ["64BIT", "PRINTK", "PRINTK_TIME", "EARLY_PRINTK", "TTY", "SERIAL_8250", "SERIAL_8250_CONSOLE",
          "BLK_DEV_INITRD", "RD_GZIP", "BINFMT_ELF", "BINFMT_SCRIPT", "PROC_FS", "SYSFS", "DEVTMPFS", "TMPFS",
          "SHMEM", "MULTIUSER", "FUTEX", "POSIX_TIMERS", "FILE_LOCKING", "EPOLL", "SIGNALFD", "TIMERFD", "EVENTFD",
          "HYPERVISOR_GUEST", "PARAVIRT", "KVM_GUEST", "PVH", "X86_MPPARSE", "ACPI", "KERNEL_LZ4", "PCI"]
DISABLE = ["RD_BZIP2", "RD_LZMA", "RD_XZ", "RD_LZO", "RD_LZ4", "RD_ZSTD", "ACPI_PROCESSOR", "ACPI_FAN",
           "ACPI_THERMAL", "ACPI_BUTTON", "ACPI_VIDEO", "NET", "BLOCK", "MODULES", "JUMP_LABEL",
           "RANDOMIZE_BASE", "RELOCATABLE", "DEBUG_KERNEL", "KALLSYMS", "FTRACE", "SWAP", "SUSPEND", "HIBERNATION",
           "KERNEL_GZIP", "KERNEL_XZ"]
VALUES = {"SERIAL_8250_NR_UARTS": "1", "SERIAL_8250_RUNTIME_UARTS": "1"}

# (file, line as shipped, replacement): the two instructions kvm_pvm's emulator cannot run.
SOURCE_EDITS = [
    ("arch/x86/kernel/alternative.c", "\tint3_selftest();\n", "\t/* int3_selftest(): INT3 is not emulated here */\n"),
    ("arch/x86/kernel/fpu/core.c", 'asm volatile("1: fwait\\n"', 'asm volatile("1: nop\\n"'),
]

EMULATOR_WORDS = ("noxsave mitigations=off clearcpuid=129,137,140,141,145,147,148,150,151,153,154,156,157,158,288,"
                  "291,293,295,296,298,304,306,307,308,311,312,514,515,534")
CMDLINE = f"console=ttyS0 panic=-1 reboot=k {EMULATOR_WORDS}"
RUN_INIT = "Run /init as init process"
MARKERS = ("PYVMM-BOOT-OK", "Attempted to kill init")     # userspace ran / the kernel handed over to /init

INIT_SCRIPT = b"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo PYVMM-BOOT-OK
poweroff -f
reboot -f
"""


def missing_tools() -> str | None:
    """None when the kernel can be built here, else what to install."""
    if not SOURCE_TARBALL.exists() or not BUSYBOX.exists():
        return f"needs {SOURCE_TARBALL} and {BUSYBOX}: apt-get install {' '.join(BUILD_PACKAGES)}"
    lacking = [t for t in ("make", "gcc", "flex", "bison", "bc") if shutil.which(t) is None]
    return f"missing build tools: {', '.join(lacking)}" if lacking else None


def install_build_packages() -> None:
    """apt-get install what the build needs (root only); the tests and the example call it when it is missing."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *BUILD_PACKAGES], check=True, env=env, capture_output=True)


def _recipe_key(edits: list) -> str:
    h = hashlib.sha256(repr((ENABLE, DISABLE, VALUES, edits, SOURCE_TARBALL.stat().st_size)).encode())
    return h.hexdigest()[:16]


def build_kernel(log=print, edits: list = SOURCE_EDITS) -> tuple[Path, Path]:
    """(bzImage, vmlinux) of the tiny kernel, built once per recipe into the cache (about 4 minutes on 2 cores).
    edits=[]: the source as shipped (pyvmm's instruction emulator finishes the int3 and fwait)."""
    out = CACHE / _recipe_key(edits)
    bz, elf = out / "bzImage", out / "vmlinux"
    if bz.exists() and elf.exists():
        return bz, elf
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    log(f"tiny-linux: unpacking {SOURCE_TARBALL} into {src}")
    with tarfile.open(SOURCE_TARBALL) as tar:
        tar.extractall(src, filter="tar")
    tree = next(p for p in src.iterdir() if p.is_dir())
    for rel, old, new in edits:
        path = tree / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise RuntimeError(f"{rel}: expected exactly one {old!r} to edit (another kernel version?)")
        path.write_text(text.replace(old, new))
    env = dict(os.environ, KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970", KBUILD_BUILD_USER="pyvmm",
               KBUILD_BUILD_HOST="pyvmm", KBUILD_BUILD_VERSION="1", ARCH="x86_64")

    def make(*args: str) -> None:
        subprocess.run(["make", "-s", *args], cwd=tree, env=env, check=True)

    make("tinyconfig")
    config = [a for o in ENABLE for a in ("-e", o)] + [a for o in DISABLE for a in ("-d", o)]
    config += [a for k, v in VALUES.items() for a in ("--set-val", k, v)]
    subprocess.run(["./scripts/config", *config], cwd=tree, env=env, check=True)
    make("olddefconfig")
    log(f"tiny-linux: building the kernel with {os.cpu_count()} jobs")
    make(f"-j{os.cpu_count() or 1}", "bzImage")
    text = (tree / ".config").read_text()
    for o in ("PVH", "SERIAL_8250_CONSOLE", "ACPI", "PCI", "BLK_DEV_INITRD"):
        if f"CONFIG_{o}=y" not in text:
            raise RuntimeError(f"the kernel config lost CONFIG_{o} (olddefconfig dropped it)")
    shutil.copy(tree / "arch/x86/boot/bzImage", bz.with_suffix(".tmp"))
    shutil.copy(tree / "vmlinux", elf)
    shutil.copy(tree / ".config", out / "config")
    bz.with_suffix(".tmp").rename(bz)
    shutil.rmtree(src)                            # 1.3 GB of objects; the images are all we need
    return bz, elf


def initramfs() -> bytes:
    """A plain (uncompressed: gunzip in an emulated guest costs ~40 s) busybox initramfs, same bytes every run."""
    busybox = BUSYBOX.read_bytes()
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys")]
    entries += [cpio.char_device("dev/console", 5, 1), cpio.char_device("dev/null", 1, 3, 0o666),
                cpio.regular("bin/busybox", busybox, 0o755)]
    entries += [cpio.symlink(f"bin/{a}", "busybox") for a in ("sh", "mount", "echo", "cat", "poweroff", "reboot")]
    entries.append(cpio.regular("init", INIT_SCRIPT, 0o755))
    return cpio.write(entries)


def write_initramfs(path: Path | None = None) -> Path:
    path = path or CACHE / "initramfs.cpio"
    data = initramfs()
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def pyvmm_command(kernel: Path, initrd: Path, memory: str = "256M", cpus: int = 1, cmdline: str = CMDLINE) -> list[str]:
    return [sys.executable, "-m", "vmm", "--kernel", str(kernel), "--initrd", str(initrd), "-m", memory,
            "-p", str(cpus), "--cmdline", cmdline, "--no-reboot", "--serial", "stdio"]


def qemu_command(kernel: Path, initrd: Path, memory: str = "256M", cpus: int = 1, cmdline: str = CMDLINE) -> list[str]:
    """QEMU's microvm with the same kernel, initramfs and words. -arch-capabilities: this KVM lists the feature
    but refuses QEMU's write of MSR 0x10a, which aborts QEMU 7.2 at start."""
    return ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", "-cpu", "host,-arch-capabilities",
            "-m", memory.rstrip("M"),
            "-smp", str(cpus), "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline]


def timed_boot(cmd: list[str], timeout: float = 400, after_marker: float = 5) -> dict:
    """Run cmd, timestamp console lines; returns seconds to the first 'Linux version', to RUN_INIT, to a marker
    and to process exit (None where not reached; a process still running after_marker s past the marker is
    killed, as QEMU microvm stays paused on this host), plus the console text."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    os.set_blocking(p.stdout.fileno(), False)
    got: dict = {"banner": None, "run_init": None, "marker": None, "exit": None}
    buf = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = t0 + timeout
    killed = False
    while True:
        now = time.perf_counter()
        if got["marker"] is not None and now > t0 + got["marker"] + after_marker or now > deadline:
            p.kill()
            killed = True
            break
        if sel.select(0.1):
            chunk = p.stdout.read(65536)
            if not chunk:
                break
            buf += chunk
            t = time.perf_counter() - t0
            text = buf.decode("latin-1")
            if got["banner"] is None and "Linux version" in text:
                got["banner"] = t
            if got["run_init"] is None and RUN_INIT in text:
                got["run_init"] = t
            if got["marker"] is None and any(m in text for m in MARKERS):
                got["marker"] = t
    rc = p.wait()
    got["exit"] = None if killed else time.perf_counter() - t0
    got["status"] = rc
    got["console"] = buf.decode("utf-8", "replace")
    return got


def _fmt(values: list) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "not reached"
    return f"{statistics.median(vals):6.1f} s ({min(vals):.1f}-{max(vals):.1f}, {len(vals)}/{len(values)} runs)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--qemu", action="store_true", help="also boot with QEMU -M microvm, alternating")
    ap.add_argument("--elf", action="store_true", help="boot the ELF vmlinux (PVH note) instead of the bzImage")
    ap.add_argument("-m", default="256M")
    ap.add_argument("-p", type=int, default=1)
    ap.add_argument("--as-shipped", action="store_true",
                    help="build without the two source edits (int3 self-test, fwait): pyvmm emulates them")
    a = ap.parse_args()
    if missing_tools():
        install_build_packages()
    bz, elf = build_kernel(edits=[] if a.as_shipped else SOURCE_EDITS)
    kernel = elf if a.elf else bz
    initrd = write_initramfs()
    print(f"kernel {kernel} ({kernel.stat().st_size} bytes), initramfs {initrd} ({initrd.stat().st_size} bytes)")
    cells = {"pyvmm": pyvmm_command(kernel, initrd, a.m, a.p)}
    if a.qemu:
        cells["qemu microvm"] = qemu_command(kernel, initrd, a.m, a.p)
    results: dict[str, list[dict]] = {k: [] for k in cells}
    for i in range(a.runs):
        for name, cmd in cells.items():
            r = timed_boot(cmd)
            results[name].append(r)
            print(f"run {i + 1} {name}: banner {r['banner']} run_init {r['run_init']} marker {r['marker']} "
                  f"exit {r['exit']} status {r['status']}", flush=True)
            if a.runs == 1:
                print(r["console"])
    for name, rs in results.items():
        print(f"{name:13} to 'Linux version' {_fmt([r['banner'] for r in rs])}; to '{RUN_INIT}' "
              f"{_fmt([r['run_init'] for r in rs])}; to process exit {_fmt([r['exit'] for r in rs])}")
    if a.qemu:
        med = {n: [r["run_init"] for r in rs if r["run_init"] is not None] for n, rs in results.items()}
        if all(med.values()):
            print(f"pyvmm/QEMU ratio to '{RUN_INIT}': "
                  f"{statistics.median(med['pyvmm']) / statistics.median(med['qemu microvm']):.2f}")


if __name__ == "__main__":
    main()

"""pyvmm against QEMU (`qemu-system-x86_64 -enable-kvm`), same guest bytes, same run, runs alternating.

Usage: python tests/bench/bench_vs_qemu.py [--runs 5] [--only startup,inproc,exits,serial,memory] [--count 20000]
                                           [--serial-bytes 1048576] [--machines microvm,pc] [--linux [--vmlinux F]]
                                           [--python VENV/bin/python]
The guest is one ELF (tests/guests/pvh_bench.S): QEMU boots it with -kernel through its PVH note (32-bit entry,
the guest enters long mode itself), pyvmm with --kernel at its ELF entry (long mode); from there both run the
same instructions. Every figure is a median with (min-max) over --runs runs; a child's CPU times and peak RSS
come from os.wait4, wall times from time.perf_counter, the first UART byte from the child's stdout pipe, peak
RSS from a small reaper process (see peak_rss).
--linux adds one boot of Debian's kernel per VMM to the line `Linux version` (about a minute each here).
--python runs pyvmm with that interpreter, e.g. a virtual environment's where `pip install .` put pyvmm (compiled
bytecode, and none of the host's own site-packages .pth hooks); by default pyvmm runs from this tree.
inproc: launches through vmm.api.run_igvm inside this process (what a loader regression suite pays per VM),
median/p10/p90, beside QEMU's process start in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.guests.build import build  # noqa: E402

QEMU = "qemu-system-x86_64"
# -cpu host alone aborts on this host (KVM refuses MSR 0x10a, IA32_ARCH_CAPABILITIES); the rest is the minimal set
QEMU_ARGS = ["-enable-kvm", "-cpu", "host,-arch-capabilities", "-smp", "1", "-nodefaults", "-no-user-config",
             "-display", "none", "-serial", "stdio", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
UNCLAIMED_PORT = 0x3000      # no device on it in pyvmm or in either QEMU machine
# pyvmm runs from this tree with its bytecode compiled, as an installed package is (pip compiles on install);
# a PYTHONDONTWRITEBYTECODE in the environment would otherwise make every launch compile ~50 modules (~50 ms).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(ROOT)}
PYTHON = [sys.executable]     # the interpreter pyvmm runs under (--python)
CWD = tempfile.gettempdir()   # not this tree: `python -m vmm` would import the tree's vmm ahead of an installed one


@dataclass
class Run:
    first: float          # s from spawn to the first byte on stdout (inf if none)
    wall: float           # s from spawn to exit
    user: float
    sys: float
    out: int              # bytes on stdout
    status: int


def run_once(cmd: list[str], marker: bytes | None = None, timeout: float = 600, expect: int = 1) -> Run:
    """Spawn cmd, read its stdout to EOF (or to `marker`, then kill it), reap it with wait4."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=ENV, cwd=CWD)
    fd = p.stdout.fileno()
    first, n, tail = float("inf"), 0, b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        if n == 0:
            first = time.perf_counter() - t0
        n += len(chunk)
        if marker is not None:
            tail = (tail + chunk)[-4096:]
            if marker in tail:
                first = time.perf_counter() - t0      # for a marker run, `first` is the time to the marker
                p.kill()
                break
        if time.perf_counter() - t0 > timeout:
            p.kill()
            break
    _, st, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(st)
    p.stdout.close()
    if marker is None and p.returncode != expect:
        err.seek(0)
        raise RuntimeError(f"{' '.join(cmd)}: status {p.returncode} (expected {expect}; 1 is the guest's debug exit)\n"
                           f"{err.read().decode(errors='replace')[-2000:]}")
    return Run(first, wall, ru.ru_utime, ru.ru_stime, n, p.returncode)


def pyvmm_cmd(kernel: str, memory: str = "64M", *extra: str) -> list[str]:
    return [*PYTHON, *extra, "-m", "vmm", "--kernel", kernel, "-m", memory]


def qemu_cmd(kernel: str, machine: str, memory: str = "64M") -> list[str]:
    return [QEMU, "-M", machine, "-m", memory, *QEMU_ARGS, "-kernel", kernel]


class Guests:
    """pvh_bench.S ELF files, built once per workload, in a temporary folder."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def elf(self, work: int, count: int = 0, port: int = 0x3F8) -> str:
        path = self.tmp / f"pvh-{work}-{count}-{port:x}.elf"
        if not path.exists():
            path.write_bytes(build("pvh_bench.S", elf=True, ld_flags=("-n",),
                                   defines={"WORK": work, "COUNT": count, "PORT": port}))
        return str(path)

    def igvm_twin(self, work: int) -> str:
        """The same ELF's loaded bytes packaged as a generic IGVM entered at the ELF entry (pyvmm --igvm)."""
        from loaders.igvm.pack import pack_flat_image
        from loaders.linux.kernel import parse_vmlinux
        path = self.tmp / f"pvh-{work}.igvm"
        k = parse_vmlinux(Path(self.elf(work)).read_bytes())
        text = next(s for s in k.segments if s.gpa <= k.entry < s.gpa + s.memsz)
        path.write_bytes(pack_flat_image(bytes(text.data), load_addr=text.gpa, entry=k.entry))
        return str(path)

    def big_igvm(self) -> str:
        """The hello twin plus 64 MiB of random page data at 16 MiB (for peak RSS with page data to load)."""
        from loaders.igvm import IgvmBuilder, Platform, VpContext
        from loaders.igvm.pack import GDT_GPA, PAGE_TABLES_GPA, native_context_for
        from loaders.linux.kernel import parse_vmlinux
        from loaders.x86 import flat_gdt, identity_page_tables
        path = self.tmp / "big.igvm"
        k = parse_vmlinux(Path(self.elf(0)).read_bytes())
        text = next(s for s in k.segments if s.gpa <= k.entry < s.gpa + s.memsz)
        b = IgvmBuilder()
        mask = b.platform(Platform.NATIVE)
        b.pages(GDT_GPA, flat_gdt()[0], mask)
        b.pages(PAGE_TABLES_GPA, identity_page_tables(PAGE_TABLES_GPA), mask)
        b.pages(text.gpa, bytes(text.data), mask)
        b.pages(16 << 20, os.urandom(64 << 20), mask)
        b.add(VpContext(0, mask, 0, native_context_for(k.entry)))
        path.write_bytes(b.build())
        return str(path)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt(xs: list[float], scale: float = 1e3, digits: int = 1) -> str:
    """median (min-max), scaled (default: seconds -> ms)."""
    return f"{med(xs) * scale:.{digits}f} ({min(xs) * scale:.{digits}f}-{max(xs) * scale:.{digits}f})"


def alternate(cells: dict[str, list[str]], runs: int, expect: int = 1) -> dict[str, list[Run]]:
    """runs rounds; each round runs every cell once, in order, so drift on the machine hits all cells alike."""
    out: dict[str, list[Run]] = {k: [] for k in cells}
    for _ in range(runs):
        for name, cmd in cells.items():
            out[name].append(run_once(cmd, expect=expect))
    return out


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


# --- a. start-up ---------------------------------------------------------------------------------------------

def bench_startup(g: Guests, runs: int, machines: list[str], compare: str | None = None) -> dict[str, list[Run]]:
    hello = g.elf(0)
    cells = {"pyvmm --kernel ELF": pyvmm_cmd(hello),
             "pyvmm --igvm twin": [*PYTHON, "-m", "vmm", "--igvm", g.igvm_twin(0), "-m", "64M"]}
    if compare:                   # another pyvmm (an older commit installed elsewhere), in the same rounds
        cells["pyvmm --kernel ELF (--compare)"] = [compare, "-m", "vmm", "--kernel", hello, "-m", "64M"]
        cells["pyvmm --igvm twin (--compare)"] = [compare, "-m", "vmm", "--igvm", g.igvm_twin(0), "-m", "64M"]
    cells.update({f"qemu -M {m}": qemu_cmd(hello, m) for m in machines})
    if PYTHON == [sys.executable]:   # from this tree: -S shows pyvmm without the host's site-packages hooks
        cells["pyvmm --kernel ELF, python -S"] = pyvmm_cmd(hello, "64M", "-S")
    res = alternate(cells, runs)
    floors = alternate({"python -c pass": [*PYTHON, "-c", "pass"],
                        "python -S -c pass": [*PYTHON, "-S", "-c", "pass"]}, runs, expect=0)
    base = min((k for k in res if k.startswith("qemu")), key=lambda k: med([r.first for r in res[k]]))
    rows = [[k, fmt([r.first for r in v]), fmt([r.wall for r in v]), fmt([r.wall - r.first for r in v]),
             ratio(med([r.first for r in v]), med([r.first for r in res[base]])),
             fmt([r.user for r in v]), fmt([r.sys for r in v])] for k, v in res.items()]
    rows += [[f"{k} (interpreter floor)", "", fmt([r.wall for r in v]), "", "", fmt([r.user for r in v]),
              fmt([r.sys for r in v])] for k, v in floors.items()]
    table(f"a. start-up, hello guest, -m 64M, {runs} runs each (ms; ratio to {base}, the faster QEMU)",
          ["VMM", "to first UART byte", "to process exit", "first byte to exit", "first byte / QEMU", "user CPU",
           "sys CPU"], rows)
    return res


# --- a2. in-process launch --------------------------------------------------------------------------------------

def quantile(xs: list[float], q: float) -> float:
    """The q-quantile of xs, interpolated between the two nearest ranks."""
    s = sorted(xs)
    i = q * (len(s) - 1)
    lo = int(i)
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (i - lo)


def spread(xs: list[float], scale: float = 1e3) -> str:
    return (f"{med(xs) * scale:.1f} (p10 {quantile(xs, 0.1) * scale:.1f}, p90 {quantile(xs, 0.9) * scale:.1f}; "
            f"p90/median {quantile(xs, 0.9) / med(xs):.2f})")


def bench_inproc(g: Guests, runs: int, per_round: int, machine: str) -> None:
    """Each round: one QEMU process start and one `pyvmm --igvm` process start on the hello guest, then per_round
    launches of its IGVM twin through vmm.api.run_igvm in this process (the first launch, which imports, is not
    counted). The in-process launch includes preparing the file, building, running and handing the VM to the
    teardown thread; the VMs still closing at the end are waited for outside the timing."""
    from vmm import teardown
    from vmm.api import run_igvm
    twin = Path(g.igvm_twin(0)).read_bytes()
    qemu = qemu_cmd(g.elf(0), machine)
    cli = [*PYTHON, "-m", "vmm", "--igvm", g.igvm_twin(0), "-m", "64M"]
    run_igvm(twin, memory="64M")
    inproc: list[float] = []
    procs: dict[str, list[Run]] = {f"qemu -M {machine}": [], "pyvmm --igvm twin (process)": []}
    for _ in range(runs):
        procs[f"qemu -M {machine}"].append(run_once(qemu))
        procs["pyvmm --igvm twin (process)"].append(run_once(cli))
        teardown.drain()
        for _ in range(per_round):
            t0 = time.perf_counter()
            out = run_igvm(twin, memory="64M")
            inproc.append(time.perf_counter() - t0)
            if out.status != 1 or b"Hello" not in out.serial:
                raise RuntimeError(f"in-process launch: status {out.status}, serial {out.serial[:80]!r}")
        teardown.drain()
    base = med([r.wall for r in procs[f"qemu -M {machine}"]])
    rows = [[k, spread([r.wall for r in v]), ratio(med([r.wall for r in v]), base)] for k, v in procs.items()]
    rows.append([f"pyvmm vmm.api.run_igvm, in-process ({len(inproc)} launches)", spread(inproc),
                 ratio(med(inproc), base)])
    table(f"a2. launch cost: process start to exit, and an in-process vmm.api.run_igvm launch, hello guest, "
          f"-m 64M, {runs} rounds (ms: median (p10, p90))", ["launch", "wall", "median / QEMU process"], rows)


# --- b. exit cost --------------------------------------------------------------------------------------------

def bench_exits(g: Guests, runs: int, count: int, machine: str) -> None:
    """Per-exit cost of pyvmm, of the bare ctypes KVM_RUN loop (tests/bench/bench_exits.py --floor-kernel, a
    process too) and of QEMU on the same ELF, in the same rounds: the floor is what any VMM that calls KVM_RUN
    through ctypes pays, so pyvmm / floor is pyvmm's own cost and floor / QEMU the cost of the call."""
    floor = [*PYTHON, str(ROOT / "tests" / "bench" / "bench_exits.py"), "--floor-kernel"]
    vmms = {"pyvmm": "pyvmm", "floor": "bare ctypes KVM_RUN loop", "qemu": f"qemu -M {machine}"}
    rows = []
    for work, what in ((1, "out"), (2, "in")):
        cells = {}
        for vmm in vmms:
            for n in (0, count):
                elf = g.elf(work, n, UNCLAIMED_PORT)
                cells[(vmm, n)] = pyvmm_cmd(elf) if vmm == "pyvmm" else [*floor, elf] if vmm == "floor" else \
                    qemu_cmd(elf, machine)
        res = alternate(cells, runs)
        per: dict[str, dict[str, list[float]]] = {}
        for vmm in vmms:
            zero, full = res[(vmm, 0)], res[(vmm, count)]
            per[vmm] = {f: [(getattr(r, f) - med([getattr(z, f) for z in zero])) / count for r in full]
                        for f in ("wall", "user", "sys")}
        for vmm, label in vmms.items():
            p = per[vmm]
            rows.append([f"{count:,} `{what}` to {UNCLAIMED_PORT:#x}", label,
                         fmt(p["wall"], 1e6, 2), ratio(med(p["wall"]), med(per["qemu"]["wall"])),
                         fmt(p["user"], 1e6, 2), fmt(p["sys"], 1e6, 2), ratio(med(p["user"]), med(per["qemu"]["user"]))])
    table(f"b. exit cost, unclaimed port, {runs} runs each; per exit = (run with N - median run with 0) / N (µs)",
          ["guest", "VMM", "wall / exit", "wall / QEMU", "user CPU / exit", "sys CPU / exit", "user / QEMU"], rows)


# --- c. serial throughput ------------------------------------------------------------------------------------

def bench_serial(g: Guests, runs: int, size: int, machine: str) -> None:
    cells = {}
    for vmm in ("pyvmm", "qemu"):
        for n in (0, size):
            elf = g.elf(1, n, 0x3F8)
            cells[(vmm, n)] = pyvmm_cmd(elf) if vmm == "pyvmm" else qemu_cmd(elf, machine)
    res = alternate(cells, runs)
    rows, rate = [], {}
    for vmm in ("pyvmm", "qemu"):
        full, zero = res[(vmm, size)], res[(vmm, 0)]
        bad = [r.out for r in full if r.out != size]
        if bad:
            raise RuntimeError(f"{vmm}: the guest sent {size} bytes, stdout had {bad}")
        z = med([r.wall for r in zero])
        rate[vmm] = [size / (r.wall - z) for r in full]
        rows.append([vmm if vmm == "pyvmm" else f"qemu -M {machine}", fmt([r.wall for r in full], 1, 3),
                     fmt([r.wall - z for r in full], 1, 3), fmt(rate[vmm], 1e-6, 2), fmt([r.user for r in full], 1, 3),
                     fmt([r.sys for r in full], 1, 3)])
    rows[0].append(ratio(med(rate["pyvmm"]), med(rate["qemu"])))
    rows[1].append("1.00x")
    table(f"c. serial throughput, {size:,} bytes of `out` to COM1 THR, {runs} runs each (s; MB/s = 10^6 bytes/s "
          f"over wall minus the median wall of the same guest with 0 bytes)",
          ["VMM", "wall", "wall net of start-up", "MB/s", "user CPU", "sys CPU", "rate / QEMU"], rows)


# --- e. memory -----------------------------------------------------------------------------------------------

def bench_memory(g: Guests, runs: int, machine: str) -> None:
    hello = g.elf(0)
    cells = {f"pyvmm, -m {m}": pyvmm_cmd(hello, m) for m in ("64M", "1G")}
    cells.update({f"qemu -M {machine}, -m {m}": qemu_cmd(hello, machine, m) for m in ("64M", "1G")})
    big = "pyvmm --igvm, 64 MiB of page data, -m 1G"
    cells[big] = [*PYTHON, "-m", "vmm", "--igvm", g.big_igvm(), "-m", "1G"]
    cells["/bin/true (what the method cannot see below)"] = ["/bin/true"]
    rss: dict[str, list[float]] = {k: [] for k in cells}
    for _ in range(runs):
        for name, cmd in cells.items():
            rss[name].append(peak_rss(cmd, 0 if cmd == ["/bin/true"] else 1))
    rows = [[k, fmt(v, 1, 1), fmt([x - (64 if k == big else 0) for x in v], 1, 1)] for k, v in rss.items()]
    table(f"e. peak RSS (ru_maxrss of a child forked by a small `python -S` reaper), {runs} runs each (MiB). The "
          f"hello guest touches about 20 KiB of guest RAM; the big IGVM's page data fills 64 MiB of it",
          ["VMM, guest", "peak RSS", "beyond guest RAM touched"], rows)


# ru_maxrss carries over exec and starts at the forking process's RSS, so a child spawned by this (large) process
# would report at least this process's size. A small reaper forks the command itself and reports its maxrss.
REAPER = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[2], sys.argv[2:])\n"
          "_, st, ru = os.wait4(pid, 0)\nopen(sys.argv[1], 'w').write(str(ru.ru_maxrss))\n"
          "sys.exit(os.waitstatus_to_exitcode(st))\n")


def peak_rss(cmd: list[str], expect: int) -> float:
    """Peak RSS of cmd in MiB, its output discarded."""
    with tempfile.NamedTemporaryFile("r") as out:
        p = subprocess.run([sys.executable, "-S", "-c", REAPER, out.name, shutil.which(cmd[0]) or cmd[0], *cmd[1:]],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV,
                           cwd=CWD)
        if p.returncode != expect:
            raise RuntimeError(f"{' '.join(cmd)}: status {p.returncode}\n{p.stderr.decode(errors='replace')[-2000:]}")
        return int(out.read()) / 1024


# --- f. Linux ------------------------------------------------------------------------------------------------

def bench_linux(machine: str, given: str | None) -> None:
    """One boot per VMM of Debian's kernel (ELF vmlinux, PVH for QEMU) to the line `Linux version`."""
    sys.path.insert(0, str(ROOT / "examples"))
    from boot_debian_kernel import KERNEL_WORDS, fetch_bzimage, vmlinux_from_bzimage
    with tempfile.TemporaryDirectory() as tmp:
        vmlinux = Path(given or Path(tmp) / "vmlinux")
        if not given:
            vmlinux.write_bytes(vmlinux_from_bzimage(Path(fetch_bzimage(tmp)).read_bytes()))
        words = KERNEL_WORDS + " earlyprintk=ttyS0"
        cells = {"pyvmm --kernel vmlinux": [*pyvmm_cmd(str(vmlinux), "1G"), "--cmdline", words],
                 f"qemu -M {machine} -kernel vmlinux": [*qemu_cmd(str(vmlinux), machine, "1G"), "-append", words]}
        rows = []
        for name, cmd in cells.items():
            r = run_once(cmd, marker=b"Linux version", timeout=300)
            rows.append([name, f"{r.first:.2f}" if r.first != float("inf") else "not seen in 300 s"])
    table("f. Linux: Debian kernel, spawn to the console line `Linux version`, one run each (s)", ["VMM", "time"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="startup,inproc,exits,serial,memory")
    ap.add_argument("--per-round", type=int, default=10, help="in-process launches per round (inproc)")
    ap.add_argument("--python", metavar="PY", help="run pyvmm with this interpreter (e.g. a venv's, after "
                                                   "`pip install .`) instead of from this tree")
    ap.add_argument("--compare", metavar="PY", help="start-up: also run the pyvmm installed for this interpreter "
                                                    "(e.g. an older commit's venv) in the same rounds")
    ap.add_argument("--count", type=int, default=100_000, help="port accesses per exit-cost run")
    ap.add_argument("--serial-bytes", type=int, default=1 << 20)
    ap.add_argument("--machines", default="microvm,pc", help="QEMU machines for start-up; the first is the "
                                                             "baseline elsewhere")
    ap.add_argument("--linux", action="store_true", help="also time Debian's kernel to `Linux version` (slow)")
    ap.add_argument("--vmlinux", metavar="FILE", help="with --linux: this ELF vmlinux instead of fetching Debian's "
                                                      "with apt-get download")
    a = ap.parse_args()
    if shutil.which(QEMU) is None:
        sys.exit(f"{QEMU} not found (apt-get install qemu-system-x86)")
    machines = a.machines.split(",")
    if a.python:
        PYTHON[:] = [a.python]
        ENV.pop("PYTHONPATH", None)
    only = set(a.only.split(",")) if a.only else set()
    qemu_version = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"python {sys.version.split()[0]}, {qemu_version}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; pyvmm runs under {'`--python`' if a.python else 'this tree'}")
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / d) for d in ("kvm", "loaders", "chipset",
                                                                                     "vmm"))], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        g = Guests(Path(tmp))
        if "startup" in only:
            bench_startup(g, a.runs, machines, a.compare)
        if "inproc" in only:
            bench_inproc(g, a.runs, a.per_round, machines[0])
        if "exits" in only:
            bench_exits(g, a.runs, a.count, machines[0])
        if "serial" in only:
            bench_serial(g, a.runs, a.serial_bytes, machines[0])
        if "memory" in only:
            bench_memory(g, a.runs, machines[0])
    if a.linux:
        bench_linux(machines[0], a.vmlinux)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

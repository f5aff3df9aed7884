"""Every table of BENCHMARKS.md in one command, in the order and with the runs BENCHMARKS.md states.

Usage: python tests/bench/run_all.py --out DIR [--venv DIR] [--only NAME ...] [--list]

pyvmm is measured as a user has it: installed with `pip install --no-build-isolation .` into a virtual
environment (--venv, made and filled here unless it exists; `--venv none` runs this checkout's code with the
interpreter running this script), with PYTHONDONTWRITEBYTECODE unset and this checkout's bytecode compiled, so no
figure includes compiling. Each benchmark's output goes to DIR/NAME.txt, headed by the commit, the time and the
load average before and after it: a figure taken while something else ran on the machine says so there. Nothing
is parsed or summarised: BENCHMARKS.md quotes the files. A host with hardware KVM (where Python's cost per exit
is not hidden behind a slow kernel path) runs the same command.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench"


def steps(py: str) -> list[tuple[str, list[str]]]:
    """(name, command) of each table; `py` is the interpreter pyvmm is installed under."""
    vs = [sys.executable, str(BENCH / "bench_vs_qemu.py"), "--machines", "microvm", "--python", py]
    return [
        ("startup", [*vs, "--runs", "15", "--only", "startup,inproc"]),
        ("exits_qemu", [*vs, "--runs", "15", "--count", "100000", "--only", "exits"]),
        ("serial_memory", [*vs, "--runs", "5", "--only", "serial,memory"]),
        ("exits_floor", [sys.executable, str(BENCH / "bench_exits.py"), "--count", "100000", "--runs", "7"]),
        ("exits_callgrind", [sys.executable, str(BENCH / "bench_exits.py"), "--callgrind", "--cg-runs", "1"]),
        ("igvm_load", [sys.executable, str(BENCH / "bench_igvm_load.py"), "--runs", "5"]),
        ("vm_destroy", [sys.executable, str(BENCH / "bench_vm_destroy.py"), "--runs", "15"]),
        ("vmfwupdate", [sys.executable, str(BENCH / "bench_vmfwupdate.py"), "--runs", "9"]),
        ("xdist", [sys.executable, str(BENCH / "bench_xdist.py"), "--runs", "3", "--bare"]),
    ]


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _commit() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def _venv(path: str) -> str:
    """The interpreter of a venv with this checkout installed in it (made now if `path` has none)."""
    py = Path(path) / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--no-build-isolation"]
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "wheel", "setuptools"], check=True)
        subprocess.run([*pip, str(ROOT)], check=True)                  # with its dependencies
    else:
        subprocess.run([*pip, "--force-reinstall", "--no-deps", str(ROOT)], check=True)   # this checkout again
    return str(py)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="folder for NAME.txt, one per benchmark")
    ap.add_argument("--venv", default=None, help="venv to install pyvmm into (default: OUT/venv); 'none': this tree")
    ap.add_argument("--only", nargs="+", help="run only these benchmarks (names as --list prints)")
    ap.add_argument("--list", action="store_true", help="print the benchmarks and their commands, run nothing")
    a = ap.parse_args()
    if a.list:
        for name, cmd in steps("VENV/bin/python"):
            print(f"{name:16} {' '.join(cmd)}")
        return 0
    if not a.out:
        ap.error("--out DIR is needed (or --list)")
    names = [n for n, _ in steps("")]
    unknown = sorted(set(a.only or ()) - set(names))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kvm"), str(ROOT / "loaders"),
                    str(ROOT / "chipset"), str(ROOT / "vmm"), str(ROOT / "tests")], check=True,
                   stdout=subprocess.DEVNULL)
    py = sys.executable if a.venv == "none" else _venv(a.venv or str(out / "venv"))
    failed = []
    for name, cmd in steps(py):
        if a.only and name not in a.only:
            continue
        path = out / f"{name}.txt"
        print(f"{time.strftime('%H:%M:%S')} {name} (load {_loadavg()}) -> {path}", flush=True)
        with open(path, "w") as f:
            f.write(f"# {name}: commit {_commit()}, started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
                    f"load average {_loadavg()}\n# {' '.join(cmd)}\n")
            f.flush()
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
            f.write(f"# exit status {rc}, ended {time.strftime('%H:%M:%S')}, load average {_loadavg()}\n")
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)} (see their files)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

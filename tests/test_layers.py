"""The layering rules, checked on the source: every import of every module (inside functions too) is read
with `ast`, and the suite fails on an import cycle, on kvm/loaders/chipset importing vmm or each other, on
anything but vmm/__main__.py importing the command line (vmm.cli), and on a PC-layout port or address (whose
one home is vmm/pc_layout.py) written as a number in chipset/ or loaders/.

The checker is plain functions over a graph {module: {imported module, ...}}, so the synthetic-graph tests
below prove it fails on the faults it names, independently of today's tree.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kvm", "loaders", "chipset", "vmm")
LOWER = ("kvm", "loaders", "chipset")       # each imports only itself, the standard library and rich
CLI = "vmm.cli"
CLI_IMPORTERS = {"vmm.__main__"}             # and the console script (pyproject.toml names vmm.cli:entry)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, is_package: bool) -> set[tuple[str, str | None]]:
    """Every import in a module's source, wherever the statement is (functions included), as (module, name):
    `import a.b` is ("a.b", None), `from a import b` is ("a", "b"); relative imports resolved against module."""
    package = module if is_package else module.rpartition(".")[0]
    out: set[tuple[str, str | None]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.update((target, alias.name) for alias in node.names)
    return out


def _lazy_names(package: str) -> dict[str, str]:
    """A package's PEP 562 table (loaders.lazy): name -> the submodule a `from package import name` loads."""
    where = getattr(importlib.import_module(package), "_WHERE", None)
    return {name: f"{package}.{sub}" for name, sub in (where or {}).items()}


def resolve(names: set[tuple[str, str | None]], modules: set[str], lazy: dict[str, dict[str, str]]) -> set[str]:
    """The project module each import executes: the submodule it names, the submodule a lazy name loads, or the
    package's __init__ for a plain name defined there (the packages above a module are not counted)."""
    out: set[str] = set()
    for target, name in names:
        if name is not None and f"{target}.{name}" in modules:
            out.add(f"{target}.{name}")
        elif name is not None and name in lazy.get(target, {}):
            out.add(lazy[target][name])
        elif target in modules:
            out.add(target)
    return out


def project_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """{module: the project modules it imports} for every .py file under the packages."""
    files = [p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]
    modules = {module_name(p, root) for p in files}
    lazy = {module_name(p, root): _lazy_names(module_name(p, root)) for p in files
            if p.name == "__init__.py" and "lazy_getattr(" in p.read_text()}
    graph: dict[str, set[str]] = {}
    for p in files:
        m = module_name(p, root)
        graph[m] = resolve(imported_names(p.read_text(), m, p.name == "__init__.py"), modules, lazy) - {m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted; a self-import counts too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that break the layering: a lower layer importing another project layer, the core importing the CLI."""
    out = []
    for mod, deps in sorted(graph.items()):
        layer = mod.split(".")[0]
        for dep in sorted(deps):
            dep_layer = dep.split(".")[0]
            if layer in LOWER and dep_layer != layer and dep_layer in PACKAGES:
                out.append(f"{mod} imports {dep}: {layer}/ may import only itself")
            in_cli = mod == CLI or mod.startswith(CLI + ".")
            if (dep == CLI or dep.startswith(CLI + ".")) and not in_cli and mod not in CLI_IMPORTERS:
                out.append(f"{mod} imports {dep}: only vmm/__main__.py may import the command line")
    return out


def pc_layout_numbers() -> set[int]:
    """The PC's ports and addresses (vmm/pc_layout.py) that are distinctive as numbers. Ports below 0x100
    (0x60, 0x80, 0x92, 0xf4) are left out: as literals they are as often bit masks and register values."""
    from loaders.record import fields
    from vmm.pc_layout import PC
    names = [f.name for f in fields(PC) if f.name.endswith(("_port", "_addr", "_gpa", "_base"))]
    values = {getattr(PC, n) for n in names} | {PC.low_reserved[0], PC.low_mmio_end}
    return {v for v in values if v >= 0x100}


def layout_literals(source: str, numbers: set[int]) -> list[tuple[int, int]]:
    """(line, value) of each integer literal in source that is one of the PC layout's numbers."""
    return [(n.lineno, n.value) for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Constant) and type(n.value) is int and n.value in numbers]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return project_graph()


def test_the_walk_sees_every_package_and_function_level_imports(graph):
    assert {"kvm.vm", "loaders.plan", "chipset.uart16550", "vmm.machine", "vmm.cli", "vmm.cli.run"} <= set(graph)
    # vmm.cli.main imports .run inside the function; api.run_igvm imports vmm.launch inside its body.
    assert "vmm.cli.run" in graph["vmm.cli"]
    assert "vmm.launch" in graph["vmm.api"]
    # a lazy name resolves to the submodule that defines it
    assert "loaders.acpi.tables" in graph["vmm.host"]


def test_no_import_cycle(graph):
    assert cycles(graph) == []


def test_layers_point_down_and_only_main_imports_the_cli(graph):
    assert layer_violations(graph) == []


def test_chipset_and_loaders_keep_no_copy_of_the_pc_layout():
    numbers = pc_layout_numbers()
    assert {0x3F8, 0x510, 0xB000, 0xCF9, 0xCF8, 0x402, 0xFEC00000, 0xFEE00000, 0x9FC00} <= numbers
    files = [p for pkg in ("chipset", "loaders") for p in sorted((ROOT / pkg).rglob("*.py"))]
    found = {str(p.relative_to(ROOT)): hits for p in files if (hits := layout_literals(p.read_text(), numbers))}
    assert found == {}


def test_the_literal_check_finds_a_port_number():
    numbers = pc_layout_numbers()
    assert layout_literals("COM1 = 0x3F8\ndef f():\n    return bus.register(0x510, 12)\n", numbers) == \
        [(1, 0x3F8), (3, 0x510)]
    assert layout_literals("MASK = 0x80\nSIZE = 0x1000\n", numbers) == []


def test_the_console_script_is_the_cli():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'pyvmm = "vmm.cli:entry"' in text


# --- the checker fails on what it names (synthetic graphs) ----------------------------------------------------
def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "vmm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import thing\n    return thing\n")
    g = project_graph(tmp_path, ("vmm",))
    assert g["vmm.b"] == {"vmm.a"}
    assert cycles(g) == [["vmm.a", "vmm.b"]]


def test_checker_finds_cycles_and_self_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_checker_finds_layer_violations():
    bad = {
        "loaders.plan": {"vmm.memory"},            # a loader importing the machine
        "chipset.uart16550": {"loaders.plan"},     # a device importing a loader
        "kvm.vm": {"chipset.bus"},
        "vmm.machine": {"vmm.cli.errors"},         # the core importing the CLI
    }
    found = layer_violations(bad)
    assert len(found) == 4, found
    ok = {"vmm.__main__": {"vmm.cli"}, "vmm.cli.run": {"vmm.cli.errors", "vmm.machine"},
          "vmm.machine": {"kvm.vm", "loaders.plan", "chipset.bus"}, "loaders.plan": {"loaders.errors"}}
    assert layer_violations(ok) == []


def test_relative_imports_resolve_against_the_package():
    names = imported_names("from ..errors import LoadError\nfrom . import blob\n", "loaders.uefi.typed", False)
    assert names == {("loaders.errors", "LoadError"), ("loaders.uefi", "blob")}
    assert resolve(names, {"loaders.errors", "loaders.uefi", "loaders.uefi.blob"}, {}) == {"loaders.errors",
                                                                                            "loaders.uefi.blob"}
    assert imported_names("from .. import __version__\n", "vmm.cli", True) == {("vmm", "__version__")}

"""The package's shape: one subpackage per stage, imports pointing one way, no cycles, small rule files.

Every import counts, those inside functions included: a cycle hidden in a function body still ties two
modules together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE = PROJECT / "workflow" / "src" / "inference_bench"
RULES = PROJECT / "workflow" / "rules"

#: Lowest first: a part may import itself and the parts before it, never one after it. The core is the
#: package root's modules; the toolkit, the Python front door, drives the whole workflow and sits on top.
LAYERS = ("core", "inputs", "accuracy", "build", "measure", "report", "toolkit")
MAX_ROOT_MODULES = 12
MAX_RULE_FILE_LINES = 300


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere in its body (`from a import b` counts b when b is
    a module of the package, else a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return {name for name in found if name in known and name != "inference_bench"}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = package_modules(package)
    known = set(modules)
    return {name: imported_modules(path, known) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "toolkit"  # the package's __init__ only re-exports the toolkit
    if parts[1] == "toolkit":
        return "toolkit"
    return parts[1] if len(parts) > 2 else "core"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {name: position for position, name in enumerate(LAYERS)}
    return sorted(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
                  for module, targets in graph.items() for target in targets
                  if rank[layer_of(target)] > rank[layer_of(module)])


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_imports_point_down_the_stages():
    assert upward_imports(import_graph()) == []


def test_the_checks_find_a_cycle_and_an_upward_import(tmp_path):
    """The two checks above fail when they should: a fake package with a cycle and a core module that
    imports a stage."""
    package = tmp_path / "inference_bench"
    (package / "report").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "report" / "__init__.py").write_text("")
    (package / "layout.py").write_text("def f():\n    from inference_bench.report import charts\n")
    (package / "report" / "charts.py").write_text("from inference_bench import layout\n")
    graph = import_graph(package)
    assert cycles(graph) == [["inference_bench.layout", "inference_bench.report.charts"]]
    assert upward_imports(graph) == [
        "inference_bench.layout (core) imports inference_bench.report.charts (report)"]


def test_every_part_is_a_known_layer():
    for module in package_modules():
        assert layer_of(module) in LAYERS, module


def test_the_root_holds_the_core_only():
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


@pytest.mark.parametrize("stage", [layer for layer in LAYERS if layer not in ("core", "toolkit")])
def test_each_stage_says_what_it_owns_and_may_import(stage):
    init = PACKAGE / stage / "__init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert docstring and "May import" in docstring, init


def test_a_rule_files_code_is_in_the_subpackage_of_its_name():
    """A newcomer finds a rule's code from its rule file: build.smk (and its input functions,
    build_inputs.smk) -> inference_bench/build/."""
    shared = {"common", "targets", "config_files"}
    stage_files = {path.stem for path in RULES.glob("*.smk") if not path.stem.endswith("_inputs")} - shared
    assert stage_files and all((PACKAGE / stage / "__init__.py").exists() for stage in stage_files), stage_files


def test_no_rule_file_is_over_300_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in [*RULES.glob("*.smk"), PROJECT / "Snakefile"]}
    assert max(sizes.values()) <= MAX_RULE_FILE_LINES, sizes

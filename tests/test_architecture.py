"""The package layout is the architecture: stages import only earlier stages, nothing imports in a cycle, and the
stages that read a finished run (analysis, audit, report) never reach TensorFlow.

Imports are read from the source (every ``import`` statement, also those inside functions), so a lazy import
cannot hide a dependency. docs/design.md explains the order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "deeprep_report"
PACKAGE = "deeprep_report"
#: The stages in pipeline order: a stage may import the ones before it, never one after it.
STAGES = ("config", "sources", "stats", "store", "extract", "analysis", "audit", "report")
#: Top-level helpers: anyone may import them; they import no stage.
HELPERS = ("__init__", "errors", "logs", "progress", "tf_runtime")
#: Top-level commands: they may import every stage; no stage imports them.
COMMANDS = ("cli", "runner", "stored_run", "__main__")
#: Stages (and the command module) that work from a stored run and must run without TensorFlow.
NO_TENSORFLOW = ("analysis", "audit", "report", "stored_run")
TENSORFLOW = ("tensorflow", "keras", "tf_keras")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module ``path`` imports (deeprep modules resolved to the module, others by their top name)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name if alias.name.startswith(PACKAGE) else alias.name.split(".")[0]
                         for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: relative import; use absolute imports")
            if not node.module.startswith(PACKAGE):
                found.add(node.module.split(".")[0])
                continue
            # ``from pkg import submodule`` depends on the submodule; ``from module import name`` on the module
            subs = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(subs or {node.module})
            if len(subs) < len(node.names):
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    names = set(modules)
    return {name: imports_of(path, names) for name, path in modules.items()}


def unit(module: str) -> str:
    """The stage (sub-package) or top-level module a deeprep module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def direction_violations(edges: dict[str, set[str]]) -> list[str]:
    """Imports that run against the stage order, into a command, or from a helper into a stage."""
    problems = []
    for source, targets in edges.items():
        here = unit(source)
        for target in sorted(t for t in targets if t.startswith(PACKAGE)):
            there = unit(target)
            if here == there:
                continue
            if there in COMMANDS and here not in COMMANDS:
                problems.append(f"{source} imports the command module {target}")
            elif here in HELPERS and there not in HELPERS:
                problems.append(f"helper {source} imports the stage module {target}")
            elif here in STAGES and there in STAGES and STAGES.index(there) > STAGES.index(here):
                problems.append(f"{source} ({here}) imports {target} of the later stage {there}")
            elif here not in STAGES + HELPERS + COMMANDS:
                problems.append(f"{source}: {here} is neither a stage, a helper nor a command (add it to the order)")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (each once, as the path that closes it)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if target not in edges:
                continue
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def reaches_tensorflow(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """An import chain from ``start`` to TensorFlow or Keras, or None."""
    queue, seen = [[start]], {start}
    while queue:
        chain = queue.pop(0)
        for target in sorted(edges.get(chain[-1], ())):
            if target in TENSORFLOW or target == f"{PACKAGE}.tf_runtime":
                return chain + [target]
            if target in edges and target not in seen:
                seen.add(target)
                queue.append(chain + [target])
    return None


def test_every_stage_folder_is_in_the_order():
    folders = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    assert folders == set(STAGES)
    top = {path.stem for path in ROOT.glob("*.py")}
    assert top == set(HELPERS) | set(COMMANDS)


def test_stages_import_only_earlier_stages():
    assert direction_violations(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


@pytest.mark.parametrize("stage", NO_TENSORFLOW)
def test_stages_that_read_a_stored_run_never_reach_tensorflow(stage):
    edges = graph()
    chains = [chain for module in edges if unit(module) == stage
              for chain in [reaches_tensorflow(edges, module)] if chain]
    assert chains == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The checkers themselves: a reverse import, a helper reaching into a stage, a cycle, a lazy TF import."""
    edges = {
        "deeprep_report.store.activations": {"deeprep_report.report.render"},
        "deeprep_report.errors": {"deeprep_report.config.loading"},
        "deeprep_report.report.render": {"deeprep_report.report.index"},
        "deeprep_report.report.index": {"deeprep_report.report.render", "deeprep_report.extract.graph"},
        "deeprep_report.extract.graph": {"keras"},
        "deeprep_report.config.loading": set(),
    }
    assert len(direction_violations(edges)) == 2
    assert cycles(edges) == [["deeprep_report.report.index", "deeprep_report.report.render",
                              "deeprep_report.report.index"]]
    assert reaches_tensorflow(edges, "deeprep_report.report.render")[-2:] == ["deeprep_report.extract.graph", "keras"]
    source = "def f():\n    from deeprep_report.extract import plan\n    import keras.ops\n"
    path = tmp_path / "lazy.py"
    path.write_text(source, encoding="utf-8")
    assert imports_of(path, {"deeprep_report.extract.plan"}) == {"deeprep_report.extract.plan", "keras"}

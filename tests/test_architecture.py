"""The layers import one way: cli -> flows -> stages -> libraries -> foundation, and no circle.

Every ``import`` in ``dfpipe/`` counts, including those inside functions (the CLI imports its
commands lazily, so a lazy import is still a dependency). docs/architecture.md describes the
layers; this test is what keeps them true.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dfpipe"

LAYERS = ("foundation", "library", "stage", "flows", "cli")
"""Lowest first: a module may import its own layer (see below) and any lower one."""

FOUNDATION = {"errors", "config", "schemas", "lake", "stage_kit", "parquet_source", "progress"}
LIBRARIES = {"audio_io", "frontend", "models", "checkpoints", "devices", "clipsets", "feature_table",
             "predictions", "corpora", "metric_tables", "conditions.grammar", "diagnostics.landscape",
             "diagnostics.figure", "publish", "llr", "shipped_model"}
STAGES = {"ingest", "conditions", "features", "train", "score", "archive_scoring", "metrics", "diagnostics",
          "study", "report", "export", "calibration", "onnx_export"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _unit(module: str) -> str:
    """The part of ``dfpipe`` a module belongs to: ``conditions.grammar``, ``conditions``, ``cli``, ..."""
    parts = module.split(".")[1:]
    if not parts:
        return ""
    if ".".join(parts[:2]) in LIBRARIES:
        return ".".join(parts[:2])
    return parts[0]


def layer_of(module: str) -> str:
    unit = _unit(module)
    if unit in ("", "__main__"):
        return "cli"  # the package's own __init__ is its public surface
    if unit in FOUNDATION:
        return "foundation"
    if unit in LIBRARIES:
        return "library"
    if unit in STAGES:
        return "stage"
    if unit in ("flows", "cli"):
        return unit
    raise AssertionError(f"{module}: not in any layer; add it to tests/test_architecture.py")


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The ``dfpipe`` modules that ``module`` imports (anywhere in its body)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


GRAPH = import_graph()


def wrong_way_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points up the layers, or sideways from one stage to another."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                found.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
            elif layer_of(module) == layer_of(target) == "stage" and _unit(module) != _unit(target):
                found.append(f"stage {module} imports another stage: {target}")
    return found


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (module names, first = last), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> list[str] | None:
        if module in visiting:
            return [*visiting[visiting.index(module):], module]
        if module in done:
            return None
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            # A package importing its own submodules (re-exports) is not a circle back to it.
            if not target.startswith(module + ".") and (circle := visit(target)):
                return circle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if circle := visit(module):
            return circle
    return None


def test_every_module_has_a_layer():
    assert {layer_of(module) for module in GRAPH} <= set(LAYERS)


def test_imports_point_down_the_layers():
    assert wrong_way_imports(GRAPH) == []


def test_there_is_no_import_circle():
    assert import_circle(GRAPH) is None


def test_the_checks_find_what_they_look_for():
    bad = {
        "dfpipe.lake": {"dfpipe.train"},  # foundation -> stage
        "dfpipe.train": {"dfpipe.score"},  # stage -> stage
        "dfpipe.score": {"dfpipe.flows.score"},  # stage -> flows
        "dfpipe.flows.score": {"dfpipe.lake"},
    }
    assert wrong_way_imports(bad) == [
        "dfpipe.lake (foundation) imports dfpipe.train (stage)",
        "dfpipe.score (stage) imports dfpipe.flows.score (flows)",
        "stage dfpipe.train imports another stage: dfpipe.score",
    ]
    assert import_circle(bad) == ["dfpipe.flows.score", "dfpipe.lake", "dfpipe.train", "dfpipe.score",
                                  "dfpipe.flows.score"]
    assert GRAPH["dfpipe.cli.train"] >= {"dfpipe.flows.train"}  # lazy imports are seen

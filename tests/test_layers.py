"""The engine's layers, as the README's architecture section draws them: each layer imports only from itself and the
layers below it, no module imports itself back through another, no module grows past the size one person reads in one
sitting, and no file of the engine names a product (the backends under plugins/ do)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"
# lowest first; a module may import from its own layer and from any layer before it. The two front ends share the
# top: `qdq run` drives the pytest plugin.
LAYERS = ["cases", "results", "engine", "report", "cli", "pytest_plugin"]
RANK = {"cases": 0, "results": 1, "engine": 2, "report": 3, "cli": 4, "pytest_plugin": 4, "items": 4, "reporter": 4}
MAX_LINES = 450
PRODUCTS = re.compile(r"tensorrt|onnxruntime|\bonnx\b|polygraphy|trtexec|cuda|\bnvidia\b", re.IGNORECASE)


def _module(path: Path) -> str:
    return ".".join(path.relative_to(HARNESS.parent).with_suffix("").parts).removesuffix(".__init__")


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return RANK[parts[1]] if len(parts) > 1 and parts[1] in RANK else None


def _imports(path: Path) -> set[str]:
    """Every harness module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (HARNESS.parent / (sub.replace(".", "/") + ".py")).exists() else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("harness."))
    return found


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted(HARNESS.rglob("*.py"))}


def test_every_module_sits_in_a_layer():
    loose = [m for m in _graph() if _layer(m) is None and m.count(".") > 0 and m != "harness.__main__"]
    assert not loose, f"modules outside harness/{{{','.join(LAYERS)}}}: {loose}"


def test_no_layer_imports_a_layer_above_it():
    upward = []
    for module, imported in _graph().items():
        mine = _layer(module)
        for other in imported:
            theirs = _layer(other)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module} -> {other}")
    assert not upward, "imports against the layering:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = _graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt == path[0]:
                cycles.append(" -> ".join([*path, nxt]))
            elif nxt not in path and nxt > path[0]:  # each cycle found once, from its smallest module
                visit(nxt, [*path, nxt])

    for start in graph:
        visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checks_see_a_planted_violation(tmp_path):
    # the walkers above must find an upward import and a cycle when there is one
    assert _layer("harness.cases.load") < _layer("harness.engine.run")
    fake = tmp_path / "m.py"
    fake.write_text("from harness.engine.run import Executor\nimport harness.report.summary\n")
    assert _imports(fake) == {"harness.engine.run", "harness.report.summary"}


def test_no_module_is_too_long():
    long = {_module(p): n for p in HARNESS.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_engine_names_no_product():
    """Products belong to plugins/: a name in the engine is a backend's knowledge that leaked (a message parsed for
    its words, an option only one family has). Comments and docstrings may name them as examples."""
    named = []
    for path in sorted(HARNESS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and PRODUCTS.search(node.value):
                if not _is_docstring(node, path):
                    named.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno}: {node.value[:60]!r}")
            elif isinstance(node, ast.Name | ast.Attribute | ast.arg | ast.FunctionDef):
                name = getattr(node, "id", None) or getattr(node, "attr", None) or getattr(node, "arg", None)
                name = name or getattr(node, "name", "")
                if PRODUCTS.search(name.replace("_", " ")):
                    named.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno}: {name}")
    assert not named, "the engine names a product:\n" + "\n".join(named)


_DOCSTRINGS: dict[Path, set[int]] = {}


def _is_docstring(node: ast.Constant, path: Path) -> bool:
    if path not in _DOCSTRINGS:
        ids = set()
        for owner in ast.walk(ast.parse(path.read_text())):
            if isinstance(owner, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = owner.body[0] if owner.body else None
                if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                    ids.add((doc.value.lineno, doc.value.col_offset))
        _DOCSTRINGS[path] = ids
    return (node.lineno, node.col_offset) in _DOCSTRINGS[path]

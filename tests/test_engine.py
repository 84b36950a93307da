"""The engine knows no backend, and a run is the same run however it is scheduled or started.

- harness/ imports no plugin and names no shipped backend; a third-party backend's repro script and artifacts reach
  the report exactly like a shipped one's.
- Without onnx, the ONNX backends say so in their own words and a numpy run works.
- `-n 0`, `-n 2` and `-n auto` give the same records, diffs and outputs; `pytest --qdq-opset` is `qdq run --opset`.
- The heatmap and difference table of a numeric mismatch use the expectation that held for that backend version.
"""

from __future__ import annotations

import ast
import json
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from conftest import REPO, install_test_backends, run_qdq

HARNESS = REPO / "harness"
CASES = ["cases/docs", "cases/rules/zero-point.yaml", "cases/numerics/non-finite.yaml"]
CPU_BACKENDS = ["numpy", "onnxruntime", "onnx-reference"]
# "numpy" also names the library: these places mean the library, not the backend.
LIBRARY_NUMPY = {
    ("bundle.py", "numpy"),
    ("dtypes.py", "numpy"),
    ("scripts.py", "numpy"),
    ("allure.py", "numpy"),
    ("html.py", "numpy"),
}


def _code_strings(tree: ast.AST) -> list[str]:
    """String constants that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
                docstrings.add(id(first.value))
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_the_engine_imports_no_plugin_and_names_no_shipped_backend():
    shipped = {ep.name for ep in entry_points(group="qdq_harness.backends") if ep.value.startswith("plugins.")}
    assert {"numpy", "onnxruntime", "onnx-reference", "tensorrt", "tensorrt-rtx"} <= shipped
    for path in sorted(HARNESS.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("plugins"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("plugins") for a in node.names), f"{path.name} imports plugins"
        named = {s for s in _code_strings(tree) if s in shipped} - {n for f, n in LIBRARY_NUMPY if f == path.name}
        assert not named, f"{path.name} names the shipped backend(s) {sorted(named)}"


@pytest.fixture
def test_backends(tmp_path) -> dict:
    return install_test_backends(tmp_path, scripted="Scripted")


def test_a_third_party_backend_gets_its_repro_and_artifacts_into_the_report(tmp_path, test_backends):
    pytest.importorskip("allure_pytest")
    out = tmp_path / "out"
    # A documentation deviation: an item a person looks at, where every backend's script and files are attached.
    r = run_qdq(
        "run",
        "cases/docs/s4-operator-example.yaml",
        "--backend",
        "scripted",
        "--backend",
        "numpy",
        "--out",
        str(out),
        "--no-report",
        env=test_backends,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in (out / "allure-results").glob("*-result.json")]
    by_backend = {next(l["value"] for l in res["labels"] if l["name"] == "backend"): res for res in results}
    for backend in ("scripted", "numpy"):
        assert f"repro-{backend}.py" in {a["name"] for a in by_backend[backend]["attachments"]}
    plan = next(a for a in by_backend["scripted"]["attachments"] if a["name"] == "plan.txt")
    assert (out / "allure-results" / plan["source"]).read_text() == "plan of docs/s4-operator-example"
    repro = run_qdq("repro", "docs/s4-operator-example", "--backend", "scripted", env=test_backends)
    assert repro.returncode == 0 and "on the scripted test backend" in repro.stdout
    quiet = run_qdq(
        "run",
        "cases/docs/s2-per-channel-axis1.yaml",
        "--backend",
        "scripted",
        "--out",
        str(tmp_path / "p"),
        "--no-report",
        env=test_backends,
    )
    assert quiet.returncode == 0  # a pass stays small: no attachment files; where it is and its tensors, in words
    (passing,) = [json.loads(p.read_text()) for p in (tmp_path / "p" / "allure-results").glob("*-result.json")]
    assert passing.get("attachments", []) == []
    assert passing["description"].startswith("`docs/s2-per-channel-axis1`: s2-per-channel-axis1.yaml, line 1")
    assert "inputs: inputT0: float32 [1, 3, 4, 5], min 0, max 59" in passing["description"]


def test_without_onnx_the_onnx_backends_say_so_and_numpy_runs(tmp_path):
    shadow = tmp_path / "no-onnx"
    for module in ("onnx", "onnxruntime"):
        (shadow / module).mkdir(parents=True)
        (shadow / module / "__init__.py").write_text(
            f"raise ImportError(\"No module named '{module}'\", name={module!r})\n"
        )
    env = {"PYTHONPATH": str(shadow)}
    listing = run_qdq("backends", env=env).stdout
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    for name in ("onnxruntime", "onnx-reference"):
        assert " no " in rows[name] and "pip install 'qdq-harness[onnx]'" in rows[name], rows[name]
        assert "entry point failed" not in rows[name]
    out = tmp_path / "out"
    r = run_qdq("run", "cases/docs", "--backend", "numpy", "--out", str(out), "--no-report", env=env)
    assert r.returncode == 0, r.stdout[-2000:]
    assert {x["status"] for x in json.loads((out / "results.json").read_text())["records"]} == {"pass", "xfail"}


def _comparable(out: Path) -> tuple[list, list, dict]:
    """Records, diffs and stored outputs, without what a schedule may change (timings, which process's pack holds
    an output)."""
    from harness.results.bundle import record_outputs

    doc = json.loads((out / "results.json").read_text())
    where = ("seconds", "timings", "outputs_file", "outputs_range")
    records = sorted(
        ({k: v for k, v in r.items() if k not in where} for r in doc["records"]),
        key=lambda r: (r["case_id"], r["backend"] or ""),
    )
    diffs = sorted(doc["diffs"], key=lambda d: (d["case_id"], d["output"], d["backends"]))
    outputs = {
        (r["case_id"], r["backend"]): {
            k: (v.dtype.str, v.shape, v.tobytes()) for k, v in record_outputs(out, r).items()
        }
        for r in doc["records"]
        if r.get("outputs_file")
    }
    return records, diffs, outputs


def test_the_bundle_is_the_same_whatever_the_number_of_workers(tmp_path):
    bundles = {}
    for workers in ("0", "2", "auto"):
        out = tmp_path / f"n{workers}"
        args = ["run", *CASES, "--out", str(out), "--no-report", "-n", workers]
        for b in CPU_BACKENDS:
            args += ["--backend", b]
        r = run_qdq(*args)
        assert r.returncode == 0, r.stdout[-2000:]
        bundles[workers] = _comparable(out)
    records, diffs, outputs = bundles["0"]
    assert len(records) == 12 * 4 and len(diffs) > 20 and len(outputs) > 30  # 12 cases x (3 backends + cross)
    assert any(not d["agree"] for d in diffs)  # the declared disagreements are there to compare
    for workers in ("2", "auto"):
        assert bundles[workers][0] == records, workers
        assert bundles[workers][1] == diffs, workers
        assert bundles[workers][2] == outputs, workers


def test_pytest_with_qdq_opset_is_qdq_run_with_opset(tmp_path):
    import subprocess
    import sys

    via_qdq, via_pytest = tmp_path / "qdq", tmp_path / "pytest"
    r = run_qdq(
        "run",
        "cases/docs",
        "--backend",
        "numpy",
        "--backend",
        "onnxruntime",
        "--opset",
        "21",
        "--out",
        str(via_qdq),
        "--no-report",
    )
    assert r.returncode == 0, r.stdout[-2000:]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "cases/docs",
            "--qdq-backend",
            "numpy",
            "--qdq-backend",
            "onnxruntime",
            "--qdq-opset",
            "21",
            "--qdq-out",
            str(via_pytest),
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:]
    a, b = _comparable(via_qdq), _comparable(via_pytest)
    assert a == b
    ort = [r for r in a[0] if r["backend"] == "onnxruntime"]
    assert ort and all(r["details"]["opset"] == 21 for r in ort)
    for out in (via_qdq, via_pytest):
        assert json.loads((out / "results.json").read_text())["run_config"]["options"] == {"opset": 21}
    bad = run_qdq("run", "cases/docs", "--backend", "onnxruntime", "--opset", "7", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--opset 7 is outside" in bad.stdout + bad.stderr


class _Recorder:
    """Stands in for the allure module: keeps what is attached."""

    class attachment_type:
        CSV = TEXT = PNG = JSON = YAML = "x"

    def __init__(self):
        self.attached: dict[str, object] = {}

    def attach(self, body, name=None, attachment_type=None, extension=None):
        self.attached[name] = body


@pytest.mark.parametrize("version, expected", [("0.2", [7.0, 8.0]), ("0.0.1", [9.0, 9.0])])
def test_the_difference_table_uses_the_expectation_that_held_for_that_version(
    load_case, monkeypatch, version, expected
):
    from harness.report import allure as report
    from harness.engine.execute import execute
    from harness.engine.verdict import judge
    from plugins.numpy.backend import NumpyReference

    (case,) = load_case(
        textwrap.dedent("""
        title: t
        source: {document: d}
        network:
          - {op: input, name: x, dtype: float32, shape: [2]}
          - {op: constant, name: s, dtype: float32, shape: [], value: 1}
          - {op: quantize, name: q, input: x, scale: s, to: int8}
          - {op: dequantize, name: y, input: q, scale: s, to: float32}
        outputs: [y]
        inputs: {x: [1, 2]}
        expect: {values: [9, 9]}
        overrides:
          - {backend: numpy, version: ">=0.1", reason: "a version-gated override", expect: {values: [7, 8]}}
    """)
    )
    outcome = execute(NumpyReference(), case)
    verdict = judge(case, "numpy", version, outcome)
    assert verdict.kind == "numeric-mismatch"
    recorder = _Recorder()
    monkeypatch.setattr(report, "allure_module", lambda: recorder)
    report.attach_case(case, "numpy", outcome, verdict, version)
    import csv

    rows = list(csv.reader(recorder.attached["y differences.csv"].splitlines()))
    assert rows[0][:5] == ["index", "input", "scale", "expected", "got"]
    assert [float(r[3]) for r in rows[1:]] == expected and [float(r[4]) for r in rows[1:]] == [1.0, 2.0]
    assert recorder.attached["y heatmap"][:8] == b"\x89PNG\r\n\x1a\n"

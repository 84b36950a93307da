"""The `qdq` command end to end, in fresh processes, as a user runs it."""

import json
import re
import shutil

import numpy as np
import pytest

from conftest import REPO, run_qdq, stored_outputs

# The documented matrices, copied from the source documents (docs/sources.md; the cookbook and operator pages), not from the case files.
S1 = [
    [[0, 2, 4, 6, 8], [11, 13, 15, 17, 19], [21, 23, 25, 28, 30], [32, 34, 36, 38, 40]],
    [[42, 44, 47, 49, 51], [53, 55, 57, 59, 61], [63, 66, 68, 70, 72], [74, 76, 78, 80, 83]],
    [[85, 87, 89, 91, 93], [95, 97, 99, 102, 104], [106, 108, 110, 112, 114], [116, 119, 121, 123, 125]],
]
S2 = [
    [[0, 2, 4, 6, 8], [11, 13, 15, 17, 19], [21, 23, 25, 28, 30], [32, 34, 36, 38, 40]],
    [[21, 22, 23, 24, 25], [26, 28, 29, 30, 31], [32, 33, 34, 35, 36], [37, 38, 39, 40, 41]],
    [[21, 22, 22, 23, 23], [24, 24, 25, 25, 26], [26, 27, 28, 28, 29], [29, 30, 30, 31, 31]],
]
S5 = [[1, 1, 2, 2, 3, 3, 4, 4], [1, 1, 2, 2, 3, 3, 4, 4], [4, 4, 5, 5, 6, 6, 7, 7], [4, 4, 5, 5, 6, 6, 7, 7]]

GOOD = (REPO / "cases" / "docs" / "s2-per-channel-axis1.yaml").read_text()
BAD = {
    "syntax.yaml": GOOD.replace("outputs: [y]", "outputs: [y"),
    "unknown-op.yaml": GOOD.replace("op: dequantize", "op: dequantise"),
    "undefined.yaml": GOOD.replace("input: q,", "input: nowhere,"),
    "outside.yaml": GOOD.replace("inputT0: {arange: {stop: 60}}", "inputT0: {npy: ../../../elsewhere.npy}"),
}


@pytest.fixture
def mixed_folder(tmp_path):
    root = tmp_path / "cases"
    (root / "bad").mkdir(parents=True)
    (root / "good").mkdir()
    np.save(tmp_path / "elsewhere.npy", np.arange(60, dtype=np.float32).reshape(1, 3, 4, 5))
    for name, text in BAD.items():
        (root / "bad" / name).write_text(text)
    shutil.copy(REPO / "cases" / "docs" / "s2-per-channel-axis1.yaml", root / "good" / "s2.yaml")
    shutil.copy(REPO / "cases" / "docs" / "s5-block-int4.yaml", root / "good" / "s5.yaml")
    return root


def test_validate_gives_one_line_per_broken_file(mixed_folder):
    result = run_qdq("validate", str(mixed_folder))
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        assert re.match(r"^/\S+/cases/bad/[\w-]+\.yaml:\d+: \S", line), line
    joined = "\n".join(lines)
    assert "YAML syntax error" in joined and "unknown layer type 'dequantise'" in joined
    assert "'nowhere' names no tensor" in joined and "outside the cases folder" in joined


def test_validate_passes_the_repository_cases():
    result = run_qdq("validate", "cases")
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_reports_broken_files_as_failed_items_and_runs_the_rest(mixed_folder, tmp_path):
    out = tmp_path / "out"
    result = run_qdq("run", str(mixed_folder), "--backend", "numpy", "--out", str(out))
    assert result.returncode == 1
    doc = json.loads((out / "results.json").read_text())
    invalid = [r for r in doc["records"] if r["kind"] == "invalid-case-file"]
    assert len(invalid) == 4 and all(r["status"] == "fail" for r in invalid)
    ran = {r["case_id"]: r["status"] for r in doc["records"] if r["kind"] != "invalid-case-file"}
    assert ran == {"good/s2": "pass", "good/s5": "pass"}
    assert doc["partial"] is False


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    result = run_qdq("run", "--backend", "numpy", "--out", str(out))
    return result, out, json.loads((out / "results.json").read_text())


def test_numpy_run_passes_the_documented_scenarios(numpy_run):
    result, out, doc = numpy_run
    assert result.returncode == 0, result.stdout[-3000:]
    status = {r["case_id"]: (r["status"], r["kind"]) for r in doc["records"]}
    for case in (
        "docs/s1-per-tensor-int8",
        "docs/s1-axis-not-set",
        "docs/s2-per-channel-axis1",
        "docs/s5-block-int4",
        "docs/s3-zero-point",
    ):
        assert status[case] == ("pass", "pass"), case
    # Scenario 4: -3.6 gives -128/127, not the printed -1.0: a flagged documentation deviation, not a pass.
    assert status["docs/s4-operator-example"] == ("xfail", "documentation-deviation")
    row = next(line for line in result.stdout.splitlines() if line.startswith("docs/s4-operator-example"))
    assert row.split()[1] == "doc"  # the terminal matrix marks a documentation deviation


def test_stored_outputs_equal_the_documented_matrices(numpy_run):
    _, out, _ = numpy_run
    s1 = stored_outputs(out, "docs/s1-per-tensor-int8", "numpy")["y"]
    assert s1.tolist() == [S1] and s1[0, 1, 2, 0] == 63
    assert stored_outputs(out, "docs/s2-per-channel-axis1", "numpy")["y"].tolist() == [S2]
    assert stored_outputs(out, "docs/s5-block-int4", "numpy")["y"].tolist() == S5


def test_bundle_shape(numpy_run):
    _, out, doc = numpy_run
    assert doc["schema_version"] == 1 and doc["started"] and doc["finished"]
    assert doc["backends"]["numpy"]["available"] is True
    assert "cases/docs/s1-per-tensor-int8.yaml" in doc["case_files"]
    record = next(r for r in doc["records"] if r["case_id"] == "docs/s1-per-tensor-int8")
    assert re.fullmatch(r"[0-9a-f]{16}", record["inputs_hash"]) and record["outputs_file"].endswith(".npzpack")
    offset, length = record["outputs_range"]
    assert (out / record["outputs_file"]).stat().st_size >= offset + length > offset >= 0


def test_backends_lists_every_backend_with_its_state():
    result = run_qdq("backends")
    assert result.returncode == 0
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert rows["numpy"] == "yes" and rows["onnxruntime"] == "yes" and rows["onnx-reference"] == "yes"


@pytest.mark.parametrize("args", [["run", "no/such/folder"], ["run", "--backend", "nonexistent"], ["frobnicate"]])
def test_usage_errors_exit_2(args, tmp_path):
    if args[0] == "run":
        args = [*args, "--out", str(tmp_path / "o")]
    assert run_qdq(*args).returncode == 2


@pytest.fixture(scope="module")
def onnxruntime_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("ort")
    r = run_qdq("run", "cases/docs", "--backend", "onnxruntime", "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stdout[-2000:]
    return out


@pytest.mark.parametrize(
    "case_id",
    [
        "docs/s1-per-tensor-int8",
        "docs/s2-per-channel-axis1",
        "docs/s3-zero-point",
        "docs/s4-operator-example",
        "docs/s5-block-int4",
    ],
)
def test_export_writes_a_checked_model_that_a_plain_script_answers_like_the_harness(
    case_id, tmp_path, onnxruntime_bundle
):
    import subprocess
    import sys

    result = run_qdq("export", case_id, "-o", str(tmp_path / "m" / "model.onnx"))
    assert result.returncode == 0 and "passes onnx.checker" in result.stdout
    script = tmp_path / "m" / "plain.py"
    script.write_text(
        "import numpy as np, onnxruntime as ort, pathlib, sys\n"
        "d = pathlib.Path(__file__).parent\n"
        "s = ort.InferenceSession(str(d / 'model.onnx'), providers=['CPUExecutionProvider'])\n"
        "feeds = {i.name: np.load(d / f'model.{i.name}.npy', allow_pickle=False) for i in s.get_inputs()}\n"
        "np.save(d / 'y.npy', s.run(['y'], feeds)[0], allow_pickle=False)\n"
    )
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    got = np.load(tmp_path / "m" / "y.npy", allow_pickle=False)
    stored = stored_outputs(onnxruntime_bundle, case_id, "onnxruntime")["y"]
    assert np.array_equal(got, stored)
    if case_id == "docs/s1-per-tensor-int8":
        assert got[0, 1, 2, 0] == 64  # ORT divides: 64 where TensorRT's cookbook prints 63
    if case_id == "docs/s3-zero-point":
        assert got[0, 0, 0, :3].tolist() == [-60, -54, -47]  # ORT applies the zero point


def test_export_refuses_an_opset_it_cannot_write_and_never_overwrites_another_models_inputs(tmp_path):
    bad = run_qdq("export", "docs/s1-per-tensor-int8", "-o", str(tmp_path / "a.onnx"), "--opset", "10")
    assert bad.returncode == 2 and "--opset 10" in bad.stderr and not (tmp_path / "a.onnx").exists()
    too_low = run_qdq("export", "docs/s5-block-int4", "-o", str(tmp_path / "b.onnx"), "--opset", "13")
    assert too_low.returncode == 2 and "needs opset 21" in too_low.stderr
    for name, case in (("a", "docs/s1-per-tensor-int8"), ("c", "cases/docs/s4-operator-example.yaml")):
        assert run_qdq("export", case, "-o", str(tmp_path / f"{name}.onnx")).returncode == 0
    a = np.load(tmp_path / "a.inputT0.npy", allow_pickle=False)
    c = np.load(tmp_path / "c.x.npy", allow_pickle=False) if (tmp_path / "c.x.npy").exists() else None
    assert a.shape == (1, 3, 4, 5) and a.reshape(-1)[30] == 30  # s1's arange, untouched by the second export
    assert c is None or c.shape != a.shape


def test_repro_takes_a_file_path_and_names_what_the_script_imports():
    by_file = run_qdq("repro", "cases/rules/zero-point.yaml::zeros", "--backend", "onnxruntime")
    assert by_file.returncode == 0
    assert "needs ml_dtypes, numpy, onnx, onnxruntime, nothing of qdq-harness" in by_file.stdout
    several = run_qdq("repro", "cases/rules/zero-point.yaml", "--backend", "numpy")
    assert several.returncode != 0 and "name one" in several.stderr and "Traceback" not in several.stderr


def test_the_polygraphy_check_fails_any_element_outside_the_tolerance():
    script = run_qdq("repro", "docs/s1-per-tensor-int8", "--backend", "tensorrt-onnx").stdout
    assert "--check-error-stat elemwise --atol 0 --rtol 0" in script and "median" not in script


def test_list_tag_and_coverage(tmp_path):
    listed = run_qdq("list", "--tag", "zero-point", "--backend", "onnxruntime", "--version", "1.32.0", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["case"] for r in rows} == {
        "docs/s3-zero-point",
        "rules/zero-point::zeros",
        "rules/zero-point::shape-mismatch",
        "rules/zero-point::uint8-asymmetric",
        "rules/dequantize-zero-point::int8-per-tensor",
        "rules/dequantize-zero-point::int8-per-channel",
    }
    assert next(r for r in rows if r["case"] == "docs/s3-zero-point")["declared"].startswith(
        "ONNX QuantizeLinear applies"
    )
    out = tmp_path / "out"
    run = run_qdq(
        "run", "--tag", "fp8", "--backend", "numpy", "--backend", "onnxruntime", "--out", str(out), "--no-report"
    )
    assert run.returncode == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["records"] and all("fp8" in doc["cases"][r["case_id"]]["tags"] for r in doc["records"])
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- coverage:start -->\nold\n<!-- coverage:end -->\ny\n")
    cov = run_qdq("coverage", str(out), "--readme", str(readme))
    assert cov.returncode == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("x\n") and text.endswith("y\n")
    fp8 = next(line for line in text.splitlines() if line.startswith("| fp8 |"))
    numpy_cell = fp8.split("|")[2].strip()
    numpy_statuses = [r["status"] for r in doc["records"] if r["backend"] == "numpy"]
    expected = ", ".join(
        f"{numpy_statuses.count(s)} {m}" for s, m in (("pass", "pass"), ("xfail", "dev")) if numpy_statuses.count(s)
    )
    assert numpy_cell == expected and sum(map(numpy_statuses.count, ("pass", "xfail"))) == len(numpy_statuses)

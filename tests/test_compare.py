"""`qdq compare`: a moved output is drift (with its size in steps), a pass turned fail is a regression (exit 1),
an edited case is "case-changed", a declared deviation that stopped is "resolved", changed inputs are not drift."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import run_qdq
from harness.results.bundle import arrays_hash, record_outputs, save_outputs


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "a"
    r = run_qdq("run", "cases/docs", "--backend", "numpy", "--backend", "onnxruntime", "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stdout[-2000:]
    return out


def _copy(baseline, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(baseline, target)
    return target, json.loads((target / "results.json").read_text())


def _record(doc, case_id, backend):
    return next(r for r in doc["records"] if r["case_id"] == case_id and r["backend"] == backend)


def _save(folder, doc):
    (folder / "results.json").write_text(json.dumps(doc))


def _compare(*folders, extra=()):
    r = run_qdq("compare", *map(str, folders), *extra)
    return r, [line.split() for line in r.stdout.splitlines()[1:]]


def test_identical_bundles_compare_clean(baseline, tmp_path):
    copy, _ = _copy(baseline, tmp_path, "b")
    r, rows = _compare(baseline, copy)
    assert r.returncode == 0 and rows == [] and "no change" in r.stdout


def test_one_output_moved_by_one_step_is_drift_of_exactly_that_case(baseline, tmp_path):
    copy, doc = _copy(baseline, tmp_path, "b")
    record = _record(doc, "docs/s1-per-tensor-int8", "numpy")
    outputs = record_outputs(copy, record)
    step = record["output_steps"]["y"]
    assert step == 1.0  # the cookbook dequantizes with scale 1: the output is the codes
    y = outputs["y"].copy()
    y[0, 0, 0, 1] += np.float32(step)
    path = save_outputs(copy, "docs/s1-per-tensor-int8", "numpy", {"y": y})
    record["outputs_file"], record["outputs_range"] = path.relative_to(copy).as_posix(), None
    record["outputs_hash"] = arrays_hash({"y": y})
    _save(copy, doc)
    r, rows = _compare(baseline, copy)
    assert r.returncode == 0, r.stdout
    assert [row[:3] for row in rows] == [["drifted", "docs/s1-per-tensor-int8", "[numpy]"]]
    assert "1 of 60 elements moved" in r.stdout and "(1 step)" in r.stdout


def test_a_pass_turned_fail_is_a_regression_and_exits_1(baseline, tmp_path):
    copy, doc = _copy(baseline, tmp_path, "b")
    record = _record(doc, "docs/s2-per-channel-axis1", "numpy")
    record.update(status="fail", kind="numeric-mismatch", reason="y: 1 of 60 differ")
    _save(copy, doc)
    md = tmp_path / "cmp.md"
    r, rows = _compare(baseline, copy, extra=("--md", str(md)))
    assert r.returncode == 1
    assert [row[:4] for row in rows] == [["REGRESSED", "docs/s2-per-channel-axis1", "[numpy]", "pass"]]
    assert "**1 regressed**" in md.read_text()


def test_an_edited_case_is_case_changed_not_a_regression(baseline, tmp_path):
    copy, doc = _copy(baseline, tmp_path, "b")
    doc["cases"]["docs/s5-block-int4"]["content_hash"] = "0" * 16
    _record(doc, "docs/s5-block-int4", "numpy").update(status="fail", kind="numeric-mismatch", reason="edited")
    _save(copy, doc)
    r, rows = _compare(baseline, copy)
    assert r.returncode == 0
    assert [row[:3] for row in rows] == [["case-changed", "docs/s5-block-int4", "[numpy]"]]


def test_a_declared_deviation_that_stopped_is_resolved_with_its_reason(baseline, tmp_path):
    copy, doc = _copy(baseline, tmp_path, "b")
    record = _record(doc, "docs/s1-per-tensor-int8", "onnxruntime")
    assert record["status"] == "xfail"
    record.update(
        status="fail",
        kind="deviation-no-longer-observed",
        reason="declared deviation not observed: ONNX Runtime now rounds like TensorRT",
    )
    _save(copy, doc)
    r, rows = _compare(baseline, copy)
    assert r.returncode == 0
    assert [row[:3] for row in rows] == [["resolved", "docs/s1-per-tensor-int8", "[onnxruntime]"]]
    assert "now rounds like TensorRT" in r.stdout


def test_other_inputs_are_named_and_never_drift(baseline, tmp_path):
    copy, doc = _copy(baseline, tmp_path, "b")
    record = _record(doc, "docs/s2-per-channel-axis1", "numpy")
    record.update(inputs_hash="f" * 16, outputs_hash="e" * 16)
    _save(copy, doc)
    r, rows = _compare(baseline, copy)
    assert [row[:3] for row in rows] == [["inputs-changed", "docs/s2-per-channel-axis1", "[numpy]"]]


def test_three_bundles_compare_pairwise_and_json_says_it(baseline, tmp_path):
    b, _ = _copy(baseline, tmp_path, "b")
    c, doc = _copy(baseline, tmp_path, "c")
    _record(doc, "docs/s3-zero-point", "numpy").update(status="error", kind="backend-crash", reason="boom")
    _save(c, doc)
    out = tmp_path / "cmp.json"
    r = run_qdq("compare", str(baseline), str(b), str(c), "--json", str(out))
    assert r.returncode == 1
    data = json.loads(out.read_text())
    assert [d["regressed"] for d in data] == [False, True]
    assert data[1]["changes"][0]["case_id"] == "docs/s3-zero-point"


def test_a_missing_bundle_is_one_line_and_exit_2(tmp_path):
    r = run_qdq("compare", str(tmp_path / "nope"), str(tmp_path / "nope2"))
    assert r.returncode == 2 and "no results.json" in r.stderr and "Traceback" not in r.stderr


def test_a_packed_bundle_compares_like_its_folder(baseline, tmp_path):
    archive = tmp_path / "probe.tar.gz"
    r = run_qdq("pack", str(baseline), "-o", str(archive))
    assert r.returncode == 0 and archive.exists()
    copy, doc = _copy(baseline, tmp_path, "b")
    _record(doc, "docs/s2-per-channel-axis1", "numpy").update(status="fail", kind="numeric-mismatch", reason="x")
    _save(copy, doc)
    r, rows = _compare(archive, copy)
    assert r.returncode == 1 and [row[:2] for row in rows] == [["REGRESSED", "docs/s2-per-channel-axis1"]]

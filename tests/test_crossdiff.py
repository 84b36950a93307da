import numpy as np
import pytest

from harness.cases.case import Tolerance
from harness.engine.compare import compare
from harness.engine.crossdiff import tie_class


def test_compare_metrics_on_known_arrays():
    got = np.array([[1.0, 2.0], [3.0, 10.0]])
    exp = np.array([[1.0, 2.5], [3.0, 8.0]])
    c = compare(got, exp, Tolerance("exact"), step=np.full((2, 2), 0.5))
    assert (c.ok, c.mismatched, c.total) == (False, 2, 4)
    assert c.max_abs == 2.0 and c.max_rel == pytest.approx(0.25) and c.max_steps == 4.0
    assert [f["index"] for f in c.first] == [[0, 1], [1, 1]]
    assert c.first[0]["got"] == 2.0 and c.first[0]["expected"] == 2.5 and c.first[0]["steps"] == 1.0


def test_compare_tolerances_and_special_values():
    nan, inf = float("nan"), float("inf")
    assert compare(np.array([nan, inf, -inf, -0.0]), np.array([nan, inf, -inf, 0.0]), Tolerance("exact")).ok
    assert not compare(np.array([nan]), np.array([1.0]), Tolerance("close", atol=1e9)).ok
    assert not compare(np.array([inf]), np.array([-inf]), Tolerance("close", atol=1e9)).ok
    assert compare(np.array([1.0009]), np.array([1.0]), Tolerance("close", atol=0.001)).ok
    assert not compare(np.array([1.0011]), np.array([1.0]), Tolerance("close", atol=0.001)).ok
    assert compare(np.array([101.0]), np.array([100.0]), Tolerance("close", rtol=0.01)).ok
    assert compare(np.array([1.5]), np.array([1.0]), Tolerance("steps", steps=1), step=np.array([0.5])).ok
    assert not compare(np.array([1.0, 2.0]), np.array([1.0]), Tolerance("exact")).ok  # shapes differ


def test_tie_classes():
    assert tie_class(0.5, 1.0) == "tie"
    assert tie_class(-2.5, 1.0) == "tie"
    assert tie_class(30.0, float(np.float32(60 / 127))) == "near-tie"  # division 64, reciprocal 63
    assert tie_class(0.3, 1.0) is None
    assert tie_class(float("nan"), 1.0) is None


def test_cross_backend_run_records_a_declared_disagreement_with_its_tie_class(tmp_path):
    import json

    from conftest import run_qdq

    out = tmp_path / "o"
    r = run_qdq(
        "run", "cases/docs/s1-per-tensor-int8.yaml", "--backend", "numpy", "--backend", "onnxruntime", "--out", str(out)
    )
    assert r.returncode == 0, r.stdout[-2000:]
    doc = json.loads((out / "results.json").read_text())
    (diff,) = doc["diffs"]
    assert diff["backends"] == ["numpy", "onnxruntime"] and diff["differing"] == 1 and diff["max_abs"] == 1.0
    first = diff["first"][0]
    assert first["index"] == [0, 1, 2, 0] and first["input"] == 30.0 and first["rounding"] == "near-tie"
    assert first["numpy"] == 63.0 and first["onnxruntime"] == 64.0
    assert diff["declared"] and "DIFF docs/s1-per-tensor-int8 numpy vs onnxruntime" in r.stdout

"""`overrides`, `requires` and `documented` are gated by backend and PEP 440 version in one way, and what is known
per TensorRT version is encoded in the cases: a version just below a feature's release is gated out, the release
itself is in, and TensorRT-RTX (a different product, 1.x) is never matched by a `tensorrt` gate."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from harness.cases.load import load_file
from harness.engine.execute import Outcome
from harness.engine.verdict import judge


def _case(rel: str, case_id: str):
    return next(c for c in load_file(REPO / "cases" / rel, REPO / "cases") if c.id == case_id)


@pytest.mark.parametrize(
    "case_id, rel, first",
    [
        ("numerics/fp8-fp4-rounding::fp4-e2m1", "numerics/fp8-fp4-rounding.yaml", "10.8"),  # FP4: TensorRT 10.8
        ("numerics/fp8-fp4-rounding::fp8-e4m3", "numerics/fp8-fp4-rounding.yaml", "10.0"),  # FP8: TensorRT 10.0
        ("docs/s5-block-int4", "docs/s5-block-int4.yaml", "10.0"),  # INT4 block weights: TensorRT 10.0
        ("rules/zero-point::zeros", "rules/zero-point.yaml", "8.2"),  # the zero-point input: TensorRT 8.2
    ],
)
def test_requires_gates_each_tensorrt_backend_by_the_release_that_brought_the_feature(case_id, rel, first):
    case = _case(rel, case_id)
    before = {"10.8": "10.7.0.23", "10.0": "8.6.1", "8.2": "8.0.3"}[first]
    for backend in ("tensorrt", "tensorrt-strongly-typed", "tensorrt-onnx"):
        assert case.unmet_requirement(backend, before) is not None, (backend, before)
        assert case.unmet_requirement(backend, first + ".0") is None
        assert case.unmet_requirement(backend, "11.4.0.106") is None
    assert case.unmet_requirement("tensorrt-rtx", "1.7.1.116") is None  # not TensorRT: never gated by it
    assert case.unmet_requirement("numpy", "0.1.0") is None


def test_an_override_holds_only_for_the_versions_it_names():
    case = _case("numerics/low-precision-outputs.yaml", "numerics/low-precision-outputs::dtype=float16")
    held, override = case.expectation_for("onnxruntime", "1.30.0")
    assert override is not None and held.kind == "error" and held.category == "runtime-failed"
    for version in ("1.31.1", "1.32.0"):
        held, override = case.expectation_for("onnxruntime", version)
        assert override is None and held.kind == "reference"


def test_documented_values_can_be_limited_to_a_backend_and_version(load_case):
    (case,) = load_case("""
        title: t
        source: {document: d}
        network:
          - {op: input, name: x, dtype: float32, shape: [2]}
          - {op: constant, name: s, dtype: float32, shape: [], value: 1}
          - {op: quantize, name: y, input: x, scale: s, to: int8}
        outputs: [y]
        inputs: {x: [1, 2]}
        expect: {values: [1, 2]}
        documented: {values: [1, 3], reason: "the 8.x cookbook prints 3", backend: tensorrt, version: "<9"}
    """)
    outcome = Outcome(outputs={"y": np.array([1, 2], np.int8)}, inputs={"x": np.array([1, 2], np.float32)})
    assert judge(case, "tensorrt", "8.6.1", outcome).kind == "documentation-deviation"
    assert judge(case, "tensorrt", "10.16.1.11", outcome).kind == "pass"
    assert judge(case, "numpy", "0.1.0", outcome).kind == "pass"

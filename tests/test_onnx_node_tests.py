"""cases/onnx-node holds every QuantizeLinear/DequantizeLinear node test of the installed onnx, with ONNX's own
inputs and expected outputs (read here straight from onnx's generators, not through the importer's code)."""

import warnings

import numpy as np
import pytest

from conftest import REPO

onnx = pytest.importorskip("onnx")


def _node_tests():
    from onnx import TensorProto, numpy_helper
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        tests = [
            t
            for t in collect_testcases(None)
            if t.model.graph.node[0].op_type in ("QuantizeLinear", "DequantizeLinear")
        ]

    def as_array(v):
        return numpy_helper.to_array(v) if isinstance(v, TensorProto) else np.asarray(v)

    return {t.name: ([as_array(v) for v in t.data_sets[0][0]], as_array(t.data_sets[0][1][0])) for t in tests}


def _cases():
    from harness.cases.load import load_file

    cases = {}
    for name in ("quantizelinear.yaml", "dequantizelinear.yaml"):
        for case in load_file(REPO / "cases" / "onnx-node" / name, REPO / "cases"):
            cases["test_" + case.id.rsplit("::", 1)[1].replace("-", "_")] = case
    return cases


def test_every_node_test_is_a_case_with_onnx_values():
    from harness.engine.execute import make_inputs
    from harness.cases.network import NetworkInfo
    from harness.cases.data import materialise

    tests, cases = _node_tests(), _cases()
    assert set(tests) == set(cases), "re-run `qdq import onnx-node-tests`: the installed onnx has other node tests"
    assert len(tests) >= 27
    for name, (inputs, expected) in tests.items():
        case = cases[name]
        info = NetworkInfo(case)
        x = make_inputs(case).get("x")
        if x is None:
            x = info.constant_value("x")
        assert np.array_equal(x.astype(np.float64), inputs[0].astype(np.float64), equal_nan=True), name
        assert np.array_equal(info.constant_value("s").astype(np.float64), np.asarray(inputs[1], np.float64)), name
        want = materialise(case.expect.values["y"], tuple(expected.shape), info.dtype("y"), case.file, case.root)
        assert want.dtype == expected.dtype or info.dtype("y") in (
            "fp8",
            "fp8e5m2",
            "fp4",
            "int4",
            "uint4",
            "int2",
            "uint2",
        )
        assert np.array_equal(want.astype(np.float64), expected.astype(np.float64), equal_nan=True), name


def test_no_override_excuses_an_onnx_backend():
    # The ONNX backends must reproduce ONNX's own tests: nothing may be declared for them.
    for case in _cases().values():
        assert not {b for o in case.overrides for b in o.selector.backends} & {"onnxruntime", "onnx-reference"}, case.id

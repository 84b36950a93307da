"""A case that runs a whole model file (`model: {onnx: file}`): what the loader accepts, how two backends' Q/DQ
tensors are told apart (propagated from different inputs, one code of rounding, or the node's own arithmetic), and
`qdq import --whole` end to end on a real ONNX Runtime export."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from conftest import run_qdq
from harness.cases.load import CaseFileError, load_file
from harness.engine.crossdiff import cross_backend_verdict
from harness.engine.execute import Outcome
from harness.engine.probes import code_distance, compare

MODEL_CASE = """
title: a whole model
source: {document: test}
network:
  - {op: input, name: x, dtype: float32, shape: [2, 3]}
model: {onnx: m.onnx}
outputs: [y]
inputs: {x: {random: {seed: 1, distribution: normal}}}
expect: observe
"""


def _tiny_model(path, scale: float = 0.05):
    """x -> QuantizeLinear(int8) -> DequantizeLinear -> Relu -> y, with onnx.helper."""
    from onnx import TensorProto, helper, save

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q1"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="d1"),
        helper.make_node("Relu", ["d"], ["y"], name="r"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [scale]), helper.make_tensor("z", TensorProto.INT8, [], [0])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))


def test_a_model_case_loads_and_its_model_bytes_are_part_of_its_content(write_case, cases_dir):
    pytest.importorskip("onnx")
    (cases_dir / "t").mkdir()
    _tiny_model(cases_dir / "t" / "m.onnx")
    case = load_file(write_case("t/case.yaml", MODEL_CASE), cases_dir)[0]
    assert case.model.format == "onnx" and case.model.path == (cases_dir / "t" / "m.onnx").resolve()
    before = case.content_hash
    _tiny_model(cases_dir / "t" / "m.onnx", scale=0.07)
    assert load_file(cases_dir / "t" / "case.yaml", cases_dir)[0].content_hash != before


@pytest.mark.parametrize(
    "change, problem",
    [
        ("model: {onnx: ../../elsewhere.onnx}", "outside the cases folder"),
        ("model: {onnx: missing.onnx}", "missing.onnx"),
        ("expect: reference", "a whole model has no documented values"),
        (
            "network:\n  - {op: input, name: x, dtype: float32, shape: [2, 3]}\n"
            "  - {op: constant, name: s, dtype: float32, shape: [], value: 1}",
            "declares only the model's inputs",
        ),
    ],
)
def test_a_model_case_that_breaks_a_rule_is_a_problem_with_its_line(write_case, cases_dir, change, problem):
    (cases_dir / "t").mkdir()
    (cases_dir / "t" / "m.onnx").write_bytes(b"not read by the loader")
    key = change.split(":")[0]
    lines = MODEL_CASE.strip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(key + ":"))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    text = "\n".join(lines[:start] + change.splitlines() + lines[end:]) + "\n"
    with pytest.raises(CaseFileError) as exc:
        load_file(write_case("t/case.yaml", text), cases_dir)
    assert problem in str(exc.value) and "case.yaml:" in str(exc.value)


def test_codes_are_counted_in_the_type_of_the_tensor():
    assert code_distance(np.array([5, -128], np.int8), np.array([3, 127], np.int8)).tolist() == [2, 255]
    int4 = ml_dtypes.int4
    assert code_distance(np.array([7, -8], int4), np.array([6, 7], int4)).tolist() == [1, 15]
    fp8 = ml_dtypes.float8_e4m3fn  # 448 and 416 are neighbours; 1 and 1.125 too (3 mantissa bits)
    assert code_distance(np.array([448, 1], fp8), np.array([416, 1.125], fp8)).tolist() == [1, 1]


PROBES = [
    {"tensor": "x1", "node": "q1", "op": "input", "step": None, "input": None},
    {"tensor": "q", "node": "q1", "op": "quantize", "step": 1.0, "input": "x1", "case": "t/qdq::001"},
    {"tensor": "d", "node": "d1", "op": "dequantize", "step": 0.5, "input": "q"},
]


def _outcome(x1, q, d) -> Outcome:
    arrays = {
        "x1": np.array(x1, np.float32),
        "q": np.array(q, np.int8),
        "d": np.array(d, np.float32),
        "y": np.array(d, np.float32),
    }
    return Outcome(outputs=arrays, details={"probes": PROBES})


def test_a_difference_is_propagated_rounding_or_the_nodes_own():
    a = _outcome([1.0, 2.0, 3.0], [2, 4, 6], [1.0, 2.0, 3.0])
    moved = _outcome([1.1, 2.0, 3.0], [3, 4, 6], [1.5, 2.0, 3.0])  # another input upstream: propagated
    rows = compare(a.outputs, moved.outputs, PROBES)
    assert [(r["node"], r["propagated"], r["rounding"], r["parts"]) for r in rows] == [("q1", 1, 0, 0), ("d1", 1, 0, 0)]
    flip = _outcome([1.0, 2.0, 3.0], [2, 5, 6], [1.0, 2.5, 3.0])  # equal input, one code: rounding
    assert [r["rounding"] for r in compare(a.outputs, flip.outputs, PROBES)] == [1, 0]
    own = _outcome([1.0, 2.0, 3.0], [2, 7, 6], [1.0, 3.5, 3.0])  # equal input, three codes: the node's own
    rows = compare(a.outputs, own.outputs, PROBES)
    assert rows[0]["parts"] == 1 and rows[1]["parts"] == 0  # d1 read q's other codes: propagated


def test_one_code_apart_must_be_the_division_and_the_reciprocal_rounding():
    """With a per-tensor scale, codes one apart from equal inputs are rounding only where x / s and x * (1/s) round
    differently; a backend rounding an exact tie away from zero parts there."""
    probes = [
        {"tensor": "x", "node": "q1", "op": "input", "step": None, "input": None},
        {"tensor": "q", "node": "q1", "op": "quantize", "step": 1.0, "input": "x", "scale": 0.1, "zero_point": 0.0},
    ]
    near_tie = np.array([1.5499999523162842], np.float32)  # x / 0.1 rounds to 15, x * float32(1 / 0.1) to 16
    rows = compare({"x": near_tie, "q": np.array([15], np.int8)}, {"x": near_tie, "q": np.array([16], np.int8)}, probes)
    assert (rows[0]["rounding"], rows[0]["parts"]) == (1, 0)
    probes[1]["scale"] = 0.5
    tie = np.array([1.25, -1.25], np.float32)  # exactly 2.5 and -2.5 codes: half to even gives 2 and -2 both ways
    away = {"x": tie, "q": np.array([3, -3], np.int8)}  # half away from zero
    rows = compare({"x": tie, "q": np.array([2, -2], np.int8)}, away, probes)
    assert (rows[0]["rounding"], rows[0]["parts"]) == (0, 2)


@pytest.fixture
def model_case(write_case, cases_dir):
    pytest.importorskip("onnx")
    (cases_dir / "t").mkdir()
    _tiny_model(cases_dir / "t" / "m.onnx")
    return load_file(write_case("t/case.yaml", MODEL_CASE), cases_dir)[0]


def test_the_cross_backend_diff_fails_only_where_a_nodes_own_arithmetic_differs(model_case):
    a = _outcome([1.0, 2.0, 3.0], [2, 4, 6], [1.0, 2.0, 3.0])
    verdict, _ = cross_backend_verdict(
        model_case, {"one": ("1", a), "two": ("1", _outcome([1.0, 2.0, 3.0], [2, 5, 6], [1.0, 2.5, 3.0]))}
    )
    assert verdict.status == "pass" and "one code apart" in verdict.reason
    verdict, _ = cross_backend_verdict(
        model_case, {"one": ("1", a), "two": ("1", _outcome([1.0, 2.0, 3.0], [2, 7, 6], [1.0, 3.5, 3.0]))}
    )
    assert (
        verdict.status == "fail" and "they part at quantize 'q1'" in verdict.reason and "t/qdq::001" in verdict.reason
    )
    unprobed = Outcome(outputs={"y": np.array([1.0, 2.0, 3.0], np.float32)}, details={})
    verdict, _ = cross_backend_verdict(model_case, {"one": ("1", a), "gpu": ("1", unprobed)})
    assert verdict.status == "pass" and "not localised: gpu" in verdict.reason


def test_import_whole_writes_a_case_every_onnx_backend_runs(tmp_path):
    """A real ONNX Runtime export (asymmetric INT8 transformer block): the case expects the contract's refusal of its
    first Dequantize with a non-zero zero point, which the contract model gives; ONNX Runtime and ONNX's reference
    evaluator run it (declared: ONNX defines it), and their Q/DQ tensors are compared node by node."""
    pytest.importorskip("onnxruntime")
    import onnx
    import quantized_models
    from onnx import numpy_helper

    float_model, model = tmp_path / "block.onnx", tmp_path / "block-q.onnx"
    quantized_models.transformer(float_model)
    quantized_models.quantize(float_model, model, per_channel=True, unsigned=False)
    folder = tmp_path / "cases" / "imported" / "block"
    r = run_qdq("import", "--whole", str(model), "-o", str(folder))
    assert r.returncode == 0, r.stderr
    assert (folder / "model.onnx").read_bytes() == model.read_bytes()  # the export byte for byte
    assert run_qdq("validate", str(tmp_path / "cases")).returncode == 0

    graph = onnx.load(str(model)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    first_asymmetric = next(
        n.name
        for n in graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and np.any(inits[n.input[2]] != 0)
    )
    out = tmp_path / "out"
    backends = ["numpy", "onnxruntime", "onnx-reference", "numpy-fused"]
    run_qdq("run", str(folder / "whole.yaml"), *(a for b in backends for a in ("--backend", b)), "--out", str(out))
    records = {r["backend"]: r for r in json.loads((out / "results.json").read_text())["records"]}
    assert records["numpy"]["status"] == "pass" and records["numpy"]["error"]["category"] == "zero-point-nonzero"
    assert repr(first_asymmetric) in records["numpy"]["error"]["message"]
    assert records["numpy-fused"]["skip_kind"] == "feature-missing"
    for name in ("onnxruntime", "onnx-reference"):  # ONNX defines the model: declared beside the contract's refusal
        assert records[name]["status"] == "xfail" and records[name].get("outputs_file")
        assert "TensorRT's contract refuses it (zero-point-nonzero" in records[name]["reason"]
        probes = records[name]["details"]["probes"]
        qdq = [n.name for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        assert [p["node"] for p in probes if p["op"] != "input"] == qdq  # every Q/DQ output, in the model's order
    cross = records["cross-backend"]
    assert cross["status"] == "pass" and "27 Q/DQ tensors compared" in cross["reason"], cross["reason"]


def test_a_model_case_whose_inputs_or_outputs_are_not_the_models_is_refused_with_both_lists(write_case, cases_dir):
    pytest.importorskip("onnx")
    from harness.cases.errors import QdqError
    from plugins.onnx.modelcase import load_model

    (cases_dir / "t").mkdir()
    _tiny_model(cases_dir / "t" / "m.onnx")
    wrong_input = MODEL_CASE.replace("name: x,", "name: z,").replace("{x: {random", "{z: {random")
    case = load_file(write_case("t/a.yaml", wrong_input), cases_dir)[0]
    with pytest.raises(QdqError) as exc:
        load_model(case)
    assert "the model's inputs are ['x']; the case declares ['z']" in str(exc.value)
    case = load_file(write_case("t/b.yaml", MODEL_CASE.replace("outputs: [y]", "outputs: [w]")), cases_dir)[0]
    with pytest.raises(QdqError) as exc:
        load_model(case)
    assert "no tensor named ['w']" in str(exc.value)

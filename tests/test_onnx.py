"""The ONNX translator, feature by feature, checked by onnx.checker and by ONNX Runtime's values."""

import numpy as np
import onnx
import pytest

from harness.engine.execute import make_inputs
from plugins.onnx.export import check, export, minimum_opset


def qdq_case(
    load_case,
    *,
    shape,
    scale_shape,
    scale,
    to="int8",
    axis=None,
    in_dtype="float32",
    out="float32",
    x=None,
    relpath="t/c.yaml",
):
    import json

    axis_text = "" if axis is None else f", axis: {axis}"
    x = x if x is not None else np.arange(np.prod(shape), dtype=np.float64).reshape(shape).tolist()
    return load_case(
        f"""
        title: t
        source: {{document: d}}
        network:
          - {{op: input, name: x, dtype: {in_dtype}, shape: {list(shape)}}}
          - {{op: constant, name: s, dtype: {in_dtype}, shape: {list(scale_shape)}, value: {json.dumps(scale)}}}
          - {{op: quantize, name: q, input: x, scale: s, to: {to}{axis_text}}}
          - {{op: dequantize, name: y, input: q, scale: s, to: {out}{axis_text}}}
        outputs: [y]
        inputs: {{x: {json.dumps(x)}}}
        expect: reference
    """,
        relpath,
    )[0]


def ort_run(case, opset=None):
    import onnxruntime as ort

    exported = export(case, opset)
    check(exported.model)
    s = ort.InferenceSession(exported.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return exported, s.run(None, make_inputs(case))[0]


def node(model, op):
    return next(n for n in model.graph.node if n.op_type == op)


def attrs(n):
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


@pytest.mark.parametrize("opset", [13, 17, 19, 21, 23])
def test_per_tensor_at_every_opset(load_case, opset):
    case = qdq_case(load_case, shape=[2, 3], scale_shape=[], scale=0.5)
    exported, y = ort_run(case, opset)
    assert exported.opset == opset
    q = node(exported.model, "QuantizeLinear")
    assert "axis" not in attrs(q)
    # the output type is stated: a zero point of int8 before opset 21, output_dtype from 21 on
    if opset < 21:
        assert len(q.input) == 3 and "output_dtype" not in attrs(q)
    else:
        assert attrs(q)["output_dtype"] == onnx.TensorProto.INT8
    assert y.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_per_channel_on_each_axis(load_case, axis):
    shape = [2, 3, 4]
    n = shape[axis]
    case = qdq_case(load_case, shape=shape, scale_shape=[n], scale=[2.0**-k for k in range(n)], axis=axis)
    exported, y = ort_run(case)
    assert attrs(node(exported.model, "QuantizeLinear"))["axis"] == axis
    x = np.arange(24, dtype=np.float64).reshape(shape)
    view = [1, 1, 1]
    view[axis] = n
    s = np.array([2.0**-k for k in range(n)]).reshape(view)
    assert np.array_equal(y, np.clip(np.rint(x / s), -128, 127) * s)


def test_block_int4(load_case):
    w = [[1.0, 2.0, 3.0, 4.0], [1.1, 2.2, 3.3, 4.4], [5.0, 6.0, 7.0, 8.0], [5.5, 6.6, 7.7, 8.8]]
    case = qdq_case(load_case, shape=[4, 4], scale_shape=[2, 4], scale=[[1, 1, 1, 1], [2, 2, 2, 2]], to="int4", x=w)
    exported, y = ort_run(case)
    assert exported.opset == 21 == minimum_opset(case)
    a = attrs(node(exported.model, "QuantizeLinear"))
    assert (a["axis"], a["block_size"], a["output_dtype"]) == (0, 2, onnx.TensorProto.INT4)
    # rows 0-1 scale 1, rows 2-3 scale 2: 5/2 = 2.5 -> 2 (even), 6.6/2 = 3.3 -> 3, 8.8/2 -> 4
    assert y.tolist() == [[1, 2, 3, 4], [1, 2, 3, 4], [4, 6, 8, 8], [6, 6, 8, 8]]


def test_fp8(load_case):
    case = qdq_case(load_case, shape=[4], scale_shape=[], scale=1, to="fp8", x=[0.3, 17, 19, 1000])
    exported, y = ort_run(case)
    assert exported.opset == 19
    assert y.tolist() == [0.3125, 16, 20, 448]


def test_fp4_is_expressed_at_opset_23(load_case):
    case = qdq_case(load_case, shape=[4], scale_shape=[], scale=1, to="fp4", x=[0.3, 2.5, 5, 7])
    exported = export(case)
    check(exported.model)
    assert exported.opset == 23
    assert attrs(node(exported.model, "QuantizeLinear"))["output_dtype"] == onnx.TensorProto.FLOAT4E2M1
    from onnx.reference import ReferenceEvaluator

    y = ReferenceEvaluator(exported.model).run(None, make_inputs(case))[0]
    assert y.astype(np.float64).tolist() == [0.5, 2, 4, 6]


def test_fp16_output_with_fp32_scale_needs_opset_23(load_case):
    case = qdq_case(load_case, shape=[2], scale_shape=[], scale=1 / 3, out="float16", x=[1, -40])
    assert minimum_opset(case) == 23
    exported, y = ort_run(case)
    assert y.dtype == np.float16
    assert attrs(node(exported.model, "DequantizeLinear"))["output_dtype"] == onnx.TensorProto.FLOAT16
    # before 23 the same case is expressed with a Cast after the DequantizeLinear
    old = export(case, 21)
    assert [n.op_type for n in old.model.graph.node] == ["QuantizeLinear", "DequantizeLinear", "Cast"]


def test_every_repository_case_exports_and_passes_the_checker():
    from pathlib import Path

    from harness.cases.load import iter_case_files, load_file

    root = Path(__file__).resolve().parent.parent / "cases"
    failures = []
    for f in iter_case_files([root]):
        for case in load_file(f, root):
            if any(l.op in ("quantize", "dequantize") and l.output_type == "int32" for l in case.network):
                continue  # the point of that case is an invalid output type
            if any(l.op == "input" and l.dtype == "int32" for l in case.network):
                continue
            try:
                if case.model is not None:  # a whole model: the file itself must pass the checker
                    import onnx

                    check(onnx.load(str(case.model.path)))
                    continue
                check(export(case).model)
            except Exception as exc:
                failures.append(f"{case.id}: {str(exc).splitlines()[0]}")
    assert failures == []


@pytest.mark.parametrize("type_name,codes", [("int4", [0, 1, -1, 7, -8]), ("uint4", [0, 1, 15, 7, 8])])
def test_onnx_runtime_is_fed_4_bit_inputs_packed_and_reads_them_right(type_name, codes):
    """A DequantizeLinear of a 4-bit network input, built with onnx.helper: ORT must see the codes themselves
    (one code per byte would be read as other codes, silently)."""
    import ml_dtypes
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from plugins.onnx.onnxruntime_backend import ort_feed

    onnx_type = {"int4": TensorProto.INT4, "uint4": TensorProto.UINT4}[type_name]
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["x", "s"], ["y"])],
        "dq",
        [helper.make_tensor_value_info("x", onnx_type, [5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    value = np.array(codes, dtype=getattr(ml_dtypes, type_name))
    (y,) = session.run(None, {"x": ort_feed(value)})
    assert y.tolist() == [c * 0.5 for c in codes]

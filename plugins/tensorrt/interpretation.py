"""How TensorRT's ONNX parser read a model's QuantizeLinear/DequantizeLinear nodes, against ONNX's semantics.

The parsed network is read back layer by layer (QUANTIZE/DEQUANTIZE layers: `axis`, `to_type`, the output's type,
the scale input's shape; measured with TensorRT-RTX 1.7, docs/tensorrt-rtx.md). ONNX's meaning is read
from the model itself: the output type (output_dtype, else the zero point's type, else UINT8 for QuantizeLinear;
output_dtype, else the scale's type for DequantizeLinear) and, for a per-axis or blocked scale, the axis (the
attribute, else ONNX's default 1). Each difference is one line naming the node; the parser's silent choices
(UINT8 read as INT8, a default axis taken as 0) become visible without a GPU.
"""

from __future__ import annotations

_ONNX_TO_CASE = {
    1: "float32",
    10: "float16",
    16: "bfloat16",
    3: "int8",
    2: "uint8",
    22: "int4",
    17: "fp8",
    23: "fp4",
    6: "int32",
}
_TRT_TO_CASE = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT4": "int4",
    "FP8": "fp8",
    "FP4": "fp4",
    "INT32": "int32",
}


def onnx_semantics(model) -> dict[str, dict]:
    """node name -> {op, to, axis (None when the scale has one coefficient), scale_shape} as ONNX defines them."""
    from onnx import helper, shape_inference

    inferred = shape_inference.infer_shapes(model)
    types = {
        vi.name: vi.type.tensor_type
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    }
    inits = {i.name: i for i in model.graph.initializer}

    def elem(name):
        if name in inits:
            return inits[name].data_type
        return types[name].elem_type if name in types else None

    def shape(name):
        if name in inits:
            return tuple(inits[name].dims)
        t = types.get(name)
        return tuple(d.dim_value for d in t.shape.dim) if t is not None else None

    out = {}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        scale_shape = shape(node.input[1])
        if "output_dtype" in attrs and attrs["output_dtype"]:
            to = attrs["output_dtype"]
        elif node.op_type == "QuantizeLinear":
            to = elem(node.input[2]) if len(node.input) > 2 and node.input[2] else 2  # UINT8 by default
        else:
            to = elem(node.input[1])
        many = scale_shape is not None and (len(scale_shape) > 1 or (len(scale_shape) == 1 and scale_shape[0] > 1))
        rank = len(shape(node.input[0]) or ())
        axis = attrs.get("axis", 1) if many else None
        out[node.name or node.output[0]] = {
            "op": node.op_type,
            "to": _ONNX_TO_CASE.get(to, str(to)),
            "axis": axis % rank if axis is not None and rank else axis,
            "scale_shape": scale_shape,
        }
    return out


def parsed(trt, network) -> dict[str, dict]:
    """layer name -> {op, to, axis} for the QUANTIZE/DEQUANTIZE layers of a parsed network."""
    out = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type not in (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE):
            continue
        layer.__class__ = trt.IQuantizeLayer if layer.type == trt.LayerType.QUANTIZE else trt.IDequantizeLayer
        to = str(layer.get_output(0).dtype).rsplit(".", 1)[-1]
        out[layer.name] = {
            "op": "QuantizeLinear" if layer.type == trt.LayerType.QUANTIZE else "DequantizeLinear",
            "to": _TRT_TO_CASE.get(to, to),
            "axis": layer.axis,
            "scale_shape": tuple(layer.get_input(1).shape),
        }
    return out


def expected(onnx_view: dict[str, dict], stated: dict[str, dict]) -> dict[str, dict]:
    """ONNX's meaning, with what a case states about a node's reading (`interpretation:`) in its place."""
    out = {name: dict(view) for name, view in onnx_view.items()}
    for name, fields in stated.items():
        if name in out:
            out[name].update({k: (dtype_name(v) if k == "to" else v) for k, v in fields.items()})
            out[name]["stated"] = set(fields)
    return out


def dtype_name(name: str) -> str:
    from harness.cases import dtypes

    return dtypes.dtype(name).name


def differences(onnx_view: dict[str, dict], trt_view: dict[str, dict]) -> list[str]:
    """One line per node whose parsed reading differs from the expected one: output type, and axis where it
    matters (a per-axis or blocked scale, or an axis a case states)."""
    lines = []
    for name, want in onnx_view.items():
        got = trt_view.get(name)
        if got is None:
            continue  # folded or renamed by the parser: nothing to compare
        if got["to"] != want["to"]:
            lines.append(f"{want['op']} {name!r}: {_whose(want, 'to')} output type {want['to']}, parsed as {got['to']}")
        if want["axis"] is not None and got["axis"] != want["axis"]:
            lines.append(
                f"{want['op']} {name!r}: {_whose(want, 'axis')} axis {want['axis']}, parsed as axis {got['axis']}"
            )
    return lines


def _whose(view: dict, field: str) -> str:
    return "the case's stated" if field in view.get("stated", ()) else "ONNX"

"""`qdq import model.onnx [-o cases/imported/NAME]`: every distinct Q/DQ configuration of a quantized ONNX model as
a small case with the model's own scales (and weights), its source naming the model and the node.

Recognised, as QAT exporters write them (pytorch_quantization, TensorRT Model Optimizer):
- a QuantizeLinear -> DequantizeLinear pair on an activation (a graph tensor): the case feeds a random tensor of
  the activation's shape (batch 1 where the model leaves it symbolic) through the same Q -> DQ;
- the same pair on a float weight initializer: the case quantizes the model's own weights;
- a DequantizeLinear of a quantized weight initializer (weights stored as INT8/INT4 codes): the case dequantizes them.
Configurations are deduplicated by operator types, granularity, axis, types and the scale's values; the first node
of each is named in `source`. Expectations are `reference` (the contract model's answer; the cross-backend diff
shows where ONNX Runtime and TensorRT differ from it): the importer cannot know the right values independently.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from plugins.onnx.nodetests import _values

MAX_ELEMENTS = 4096  # a case stays small: larger tensors are cut to their first rows (said in the title)


def _case_type(elem_type: int) -> str | None:
    from plugins.onnx.export import ONNX_TYPES

    return next((name for name, t in ONNX_TYPES.items() if t == elem_type), None)


def _shape(model, name: str, inits: dict) -> list[int] | None:
    if name in inits:
        return list(inits[name].dims)
    from onnx import shape_inference

    graph = shape_inference.infer_shapes(model).graph
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.name == name:
            return [d.dim_value if d.dim_value > 0 else 1 for d in vi.type.tensor_type.shape.dim]
    return None


def _elem(model, name: str, inits: dict) -> int | None:
    if name in inits:
        return inits[name].data_type
    from onnx import shape_inference

    graph = shape_inference.infer_shapes(model).graph
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    return None


def _trim(array: np.ndarray) -> tuple[np.ndarray, bool]:
    if array.size <= MAX_ELEMENTS or array.ndim == 0:
        return array, False
    rows = max(1, MAX_ELEMENTS // max(1, array[0].size))
    return array[:rows], True


def configurations(model, model_name: str) -> list[dict]:
    """The distinct Q/DQ configurations of a model, each as a case body."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    seen, cases = set(), []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        src = node.input[0]
        scale_name = node.input[1]
        if scale_name not in inits:
            continue  # a runtime scale: not a configuration a case can state
        scale = numpy_helper.to_array(inits[scale_name])
        zp = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] in inits else None
        if node.op_type == "DequantizeLinear" and src in producers and producers[src].op_type == "QuantizeLinear":
            continue  # the pair is imported from its QuantizeLinear
        if node.op_type == "QuantizeLinear":
            pair = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input and n.input[0] == node.output[0]]
            kind = "weight" if src in inits else "activation"
            quantized = _case_type(inits[node.input[2]].data_type) if zp is not None else None
            quantized = quantized or _case_type(attrs.get("output_dtype", 0)) or "uint8"
        else:
            if src not in inits:
                continue  # a DQ of a quantized network input: imported as an activation pair elsewhere if any
            pair, kind, quantized = [], "quantized-weight", _case_type(inits[src].data_type)
        real = _case_type(_elem(model, src, inits) if kind != "quantized-weight" else inits[scale_name].data_type)
        if quantized is None or real is None:
            continue
        axis = attrs.get("axis", 1) if scale.size > 1 else None
        key = (kind, node.op_type, quantized, real, scale.shape, axis, attrs.get("block_size"),
               hashlib.sha256(scale.tobytes()).hexdigest(), None if zp is None else zp.tobytes())
        if key in seen:
            continue
        seen.add(key)
        cases.append(_case(model, node, pair, kind, quantized, real, scale, zp, axis, inits, model_name,
                           len(cases)))
    return cases


def _case(model, node, pair, kind, quantized, real, scale, zp, axis, inits, model_name, index) -> dict:
    from onnx import numpy_helper

    src = node.input[0]
    network, trimmed = [], False
    if kind == "activation":
        shape = _shape(model, src, inits) or [1, 4]
        if int(np.prod(shape)) > MAX_ELEMENTS and len(shape) >= 2:
            shape = [1] + shape[1:]
        network.append({"op": "input", "name": "x", "dtype": real, "shape": shape})
        inputs = {"x": {"random": {"seed": index, "distribution": "normal", "mean": 0,
                                   "std": float(np.max(scale)) * 40 if scale.size else 1}}}
    else:
        value = numpy_helper.to_array(inits[src])
        value, trimmed = _trim(value)
        if axis not in (None, 0) and trimmed:
            value, trimmed = numpy_helper.to_array(inits[src]), False  # never cut along a per-channel axis
        network.append({"op": "input", "name": "unused", "dtype": "float32", "shape": [1]})
        network.append({"op": "constant", "name": "x", "dtype": quantized if kind == "quantized-weight" else real,
                        "shape": list(value.shape), "value": _nested(value)})
        inputs = {"unused": [0]}
        if scale.ndim == value.ndim and scale.shape[0] != value.shape[0] and axis == 0:
            scale = scale[: value.shape[0]]
    network.append({"op": "constant", "name": "s", "dtype": _case_type(inits[node.input[1]].data_type),
                    "shape": list(scale.shape), "value": _nested(scale)})
    zp_layer = {}
    if zp is not None:
        network.append({"op": "constant", "name": "zp", "dtype": quantized, "shape": list(zp.shape), "value": _nested(zp)})
        zp_layer = {"zero_point": "zp"}
    axis_attr = {"axis": axis} if axis is not None and scale.ndim == 1 else {}
    if kind == "quantized-weight":
        network.append({"op": "dequantize", "name": "y", "input": "x", "scale": "s", **zp_layer, **axis_attr, "to": real})
    else:
        network.append({"op": "quantize", "name": "q", "input": "x", "scale": "s", **zp_layer, **axis_attr, "to": quantized})
        network.append({"op": "dequantize", "name": "y", "input": "q", "scale": "s", **zp_layer, **axis_attr,
                        "to": real})
    granularity = "per-tensor" if scale.size == 1 else ("per-channel" if scale.ndim == 1 else "block")
    name = f"{index:03d}-{kind}-{quantized}-{granularity}"
    return {"name": name,
            "title": f"{model_name}: {kind} {granularity} {quantized} Q/DQ of {src!r} (node {node.name or node.output[0]!r})"
                     + (" - cut to its first rows" if trimmed else ""),
            "source": {"document": model_name, "where": f"node {node.name or node.output[0]!r} ({node.op_type})"},
            "tags": ["imported", kind, quantized, granularity],
            "network": network, "outputs": ["y"], "inputs": inputs, "expect": "reference"}


def _nested(array: np.ndarray):
    flat = _values(np.asarray(array))
    if np.ndim(array) == 0:
        return flat[0]
    return np.array(flat, dtype=object).reshape(np.shape(array)).tolist()


def render(model_name: str, cases: list[dict]) -> str:
    lines = ["# yaml-language-server: $schema=../../../harness/schema/case.schema.json",
             f"# Written by `qdq import {model_name}`: the model's distinct Q/DQ configurations, expectations from the",
             "# contract model (`reference`). Edit freely: state values you know, declare what a backend does.",
             "cases:"]
    for c in cases:
        lines.append(f"  - name: {c['name']}")
        for key in ("title", "source", "tags"):
            lines.append(f"    {key}: {json.dumps(c[key])}")
        lines.append("    network:")
        lines += [f"      - {json.dumps(layer)}" for layer in c["network"]]
        for key in ("outputs", "inputs", "expect"):
            lines.append(f"    {key}: {json.dumps(c[key])}")
    return "\n".join(lines) + "\n"


def import_command(source: str, output: Path | None) -> tuple[int, str]:
    """`qdq import model.onnx [-o DIR]` (default cases/imported/<model name>)."""
    import onnx

    path = Path(source)
    if not path.is_file():
        return 2, f"{source}: no such model file"
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        return 2, f"{source}: not a readable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    cases = configurations(model, path.name)
    if not cases:
        return 1, f"{source}: no QuantizeLinear/DequantizeLinear with a constant scale found; nothing written"
    out = Path(output) if output else Path("cases") / "imported" / path.stem
    out.mkdir(parents=True, exist_ok=True)
    target = out / "qdq.yaml"
    target.write_text(render(path.name, cases))
    from harness.caseload import check_file, find_root

    loaded, problems = check_file(target, find_root(target))
    if problems:
        return 1, f"{target}: written, but it does not load: {problems[0]}"
    return 0, f"{target}: {len(loaded)} case(s), one per distinct Q/DQ configuration of {path.name}"

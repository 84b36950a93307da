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


def value_infos(model) -> dict:
    """name -> (elem_type, shape) of every graph input, output and inferred intermediate: shape inference runs once
    per import (over a whole model it is the slow part)."""
    from onnx import shape_inference

    graph = shape_inference.infer_shapes(model).graph
    return {
        vi.name: (
            vi.type.tensor_type.elem_type,
            [d.dim_value if d.dim_value > 0 else 1 for d in vi.type.tensor_type.shape.dim],
        )
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output)
    }


def _shape(infos: dict, name: str, inits: dict) -> list[int] | None:
    if name in inits:
        return list(inits[name].dims)
    found = infos.get(name)
    return found[1] if found else None


def _elem(infos: dict, name: str, inits: dict) -> int | None:
    if name in inits:
        return inits[name].data_type
    found = infos.get(name)
    return found[0] if found else None


def _trim(array: np.ndarray) -> tuple[np.ndarray, bool]:
    if array.size <= MAX_ELEMENTS or array.ndim == 0:
        return array, False
    rows = max(1, MAX_ELEMENTS // max(1, array[0].size))
    return array[:rows], True


def configurations(model, model_name: str, files: "_Files", infos: dict) -> list[dict]:
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
            kind = "weight" if src in inits else "activation"
            quantized = _case_type(inits[node.input[2]].data_type) if zp is not None else None
            quantized = quantized or _case_type(attrs.get("output_dtype", 0)) or "uint8"
        else:
            if src not in inits:
                continue  # a DQ of a quantized network input: imported as an activation pair elsewhere if any
            kind, quantized = "quantized-weight", _case_type(inits[src].data_type)
        real = _case_type(_elem(infos, src, inits) if kind != "quantized-weight" else inits[scale_name].data_type)
        if quantized is None or real is None:
            continue
        axis = attrs.get("axis", 1) if scale.size > 1 else None
        key = (
            kind,
            node.op_type,
            quantized,
            real,
            scale.shape,
            axis,
            attrs.get("block_size"),
            hashlib.sha256(scale.tobytes()).hexdigest(),
            None if zp is None else zp.tobytes(),
        )
        if key in seen:
            continue
        seen.add(key)
        cases.append(_case(infos, node, kind, quantized, real, scale, zp, axis, inits, model_name, len(cases), files))
    return cases


def _dq_source(name: str, inits: dict, producers: dict):
    """(kind, details) of a DequantizeLinear output feeding a layer: a Q/DQ pair on an activation or float weight,
    or a DQ of stored codes; None when it is neither (a runtime scale, another producer)."""
    from onnx import helper, numpy_helper

    dq = producers.get(name)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in inits:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in dq.attribute}
    scale = numpy_helper.to_array(inits[dq.input[1]])
    zp = numpy_helper.to_array(inits[dq.input[2]]) if len(dq.input) > 2 and dq.input[2] in inits else None
    out = {"scale": scale, "zp": zp, "axis": attrs.get("axis", 1) if scale.size > 1 else None, "dq": dq}
    if dq.input[0] in inits:
        return "codes", {**out, "codes": numpy_helper.to_array(inits[dq.input[0]])}
    q = producers.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear" or q.input[1] != dq.input[1]:
        return None
    if q.input[0] in inits:
        return "weight", {**out, "float": numpy_helper.to_array(inits[q.input[0]]), "q": q}
    return "activation", {**out, "q": q, "source": q.input[0]}


def layer_cases(model, model_name: str, files: "_Files", start: int, infos: dict) -> list[dict]:
    """Each Conv/MatMul whose two inputs are Dequantize outputs (an activation Q/DQ pair and a quantized weight),
    with the Quantize after it when there is one, as a case: the model's own weights, scales and attributes."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    cases = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul") or len(node.input) < 2:
            continue
        x, w = _dq_source(node.input[0], inits, producers), _dq_source(node.input[1], inits, producers)
        if x is None or w is None or x[0] != "activation" or w[0] not in ("weight", "codes"):
            continue
        xd, wd = x[1], w[1]
        real = _case_type(_elem(infos, xd["source"], inits))
        quantized = _case_type(inits[xd["dq"].input[2]].data_type) if xd["zp"] is not None else "int8"
        shape = _shape(infos, xd["source"], inits) or [1]
        index = start + len(cases)
        tag = f"{index:03d}-{node.op_type.lower()}"
        net = [{"op": "input", "name": "x", "dtype": real, "shape": shape}]

        def qdq(prefix, d, source, qtype):
            layers = [
                {
                    "op": "constant",
                    "name": f"{prefix}s",
                    "dtype": _case_type(inits[d["dq"].input[1]].data_type),
                    "shape": list(d["scale"].shape),
                    "value": files.value(f"{tag}-{prefix}s", d["scale"]),
                }
            ]
            extra = {"axis": d["axis"]} if d["axis"] is not None and d["scale"].ndim == 1 else {}
            if d["zp"] is not None:
                layers.append(
                    {
                        "op": "constant",
                        "name": f"{prefix}zp",
                        "dtype": qtype,
                        "shape": list(d["zp"].shape),
                        "value": files.value(f"{tag}-{prefix}zp", d["zp"]),
                    }
                )
                extra["zero_point"] = f"{prefix}zp"
            if source is not None:
                layers.append(
                    {
                        "op": "quantize",
                        "name": f"{prefix}q",
                        "input": source,
                        "scale": f"{prefix}s",
                        **extra,
                        "to": qtype,
                    }
                )
                source = f"{prefix}q"
            layers.append(
                {
                    "op": "dequantize",
                    "name": f"{prefix}d",
                    "input": source or f"{prefix}codes",
                    "scale": f"{prefix}s",
                    **extra,
                    "to": _case_type(inits[d["dq"].input[1]].data_type),
                }
            )
            return layers

        net += qdq("x", xd, "x", quantized)
        if w[0] == "weight":
            net.append(
                {
                    "op": "constant",
                    "name": "w",
                    "dtype": real,
                    "shape": list(wd["float"].shape),
                    "value": files.value(f"{tag}-w", wd["float"]),
                }
            )
            net += qdq("w", wd, "w", quantized)
        else:
            codes_type = _case_type(inits[wd["dq"].input[0]].data_type)
            net.append(
                {
                    "op": "constant",
                    "name": "wcodes",
                    "dtype": codes_type,
                    "shape": list(wd["codes"].shape),
                    "value": files.value(f"{tag}-wcodes", wd["codes"]),
                }
            )
            net += qdq("w", wd, None, codes_type)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            layer = {"op": "conv", "name": "c", "input": "xd", "weight": "wd"}
            if len(node.input) > 2 and node.input[2] in inits:
                bias = numpy_helper.to_array(inits[node.input[2]])
                net.append(
                    {
                        "op": "constant",
                        "name": "b",
                        "dtype": real,
                        "shape": list(bias.shape),
                        "value": files.value(f"{tag}-b", bias),
                    }
                )
                layer["bias"] = "b"
            pads = attrs.get("pads", [0, 0, 0, 0])
            layer.update(
                {
                    k: v
                    for k, v in (
                        ("stride", attrs.get("strides")),
                        ("dilation", attrs.get("dilations")),
                        ("groups", attrs.get("group")),
                    )
                    if v not in (None, [1, 1], 1)
                }
            )
            if any(pads):
                layer["padding"] = [pads[0], pads[1], pads[2], pads[3]]
        else:
            layer = {"op": "matmul", "name": "c", "inputs": ["xd", "wd"]}
        net.append(layer)
        outputs = ["c"]
        after = [n for n in consumers.get(node.output[0], []) if n.op_type == "QuantizeLinear" and n.input[1] in inits]
        if after:
            q = after[0]
            sy = numpy_helper.to_array(inits[q.input[1]])
            if sy.size == 1:
                net.append(
                    {
                        "op": "constant",
                        "name": "ys",
                        "dtype": _case_type(inits[q.input[1]].data_type),
                        "shape": list(sy.shape),
                        "value": _nested(sy),
                    }
                )
                net.append({"op": "quantize", "name": "y", "input": "c", "scale": "ys", "to": quantized})
                outputs = ["y"]
        cases.append(
            {
                "name": tag,
                "title": f"{model_name}: {node.op_type} {node.name or node.output[0]!r} with its "
                f"Q/DQ inputs{' and the Quantize after it' if outputs == ['y'] else ''}",
                "source": {"document": model_name, "where": f"node {node.name or node.output[0]!r} ({node.op_type})"},
                "tags": ["imported", "layers", node.op_type.lower(), quantized],
                "network": net,
                "outputs": outputs,
                "inputs": {
                    "x": {
                        "random": {
                            "seed": index,
                            "distribution": "normal",
                            "mean": 0,
                            "std": float(np.max(xd["scale"])) * 40,
                        }
                    }
                },
                # Float sums in another order (and division against the reciprocal) may move a result by a
                # rounding: a float output within 1e-5, a quantized one within one step.
                "expect": {
                    "reference": {"tolerance": {"steps": 1} if outputs == ["y"] else {"atol": 1e-5, "rtol": 1e-5}}
                },
            }
        )
    return cases


def _case(infos, node, kind, quantized, real, scale, zp, axis, inits, model_name, index, files) -> dict:
    from onnx import numpy_helper

    src = node.input[0]
    network, trimmed = [], False
    if kind == "activation":
        shape = _shape(infos, src, inits) or [1, 4]
        if int(np.prod(shape)) > MAX_ELEMENTS and len(shape) >= 2:
            shape = [1] + shape[1:]
        network.append({"op": "input", "name": "x", "dtype": real, "shape": shape})
        inputs = {
            "x": {
                "random": {
                    "seed": index,
                    "distribution": "normal",
                    "mean": 0,
                    "std": float(np.max(scale)) * 40 if scale.size else 1,
                }
            }
        }
    else:
        value = numpy_helper.to_array(inits[src])
        value, trimmed = _trim(value)
        if axis not in (None, 0) and trimmed:
            value, trimmed = numpy_helper.to_array(inits[src]), False  # never cut along a per-channel axis
        network.append({"op": "input", "name": "unused", "dtype": "float32", "shape": [1]})
        network.append(
            {
                "op": "constant",
                "name": "x",
                "dtype": quantized if kind == "quantized-weight" else real,
                "shape": list(value.shape),
                "value": files.value(f"{index:03d}-x", value),
            }
        )
        inputs = {"unused": [0]}
        if scale.ndim == value.ndim and scale.shape[0] != value.shape[0] and axis == 0:
            scale = scale[: value.shape[0]]
    network.append(
        {
            "op": "constant",
            "name": "s",
            "dtype": _case_type(inits[node.input[1]].data_type),
            "shape": list(scale.shape),
            "value": _nested(scale),
        }
    )
    zp_layer = {}
    if zp is not None:
        network.append(
            {"op": "constant", "name": "zp", "dtype": quantized, "shape": list(zp.shape), "value": _nested(zp)}
        )
        zp_layer = {"zero_point": "zp"}
    axis_attr = {"axis": axis} if axis is not None and scale.ndim == 1 else {}
    if kind == "quantized-weight":
        network.append(
            {"op": "dequantize", "name": "y", "input": "x", "scale": "s", **zp_layer, **axis_attr, "to": real}
        )
    else:
        network.append(
            {"op": "quantize", "name": "q", "input": "x", "scale": "s", **zp_layer, **axis_attr, "to": quantized}
        )
        network.append(
            {"op": "dequantize", "name": "y", "input": "q", "scale": "s", **zp_layer, **axis_attr, "to": real}
        )
    granularity = "per-tensor" if scale.size == 1 else ("per-channel" if scale.ndim == 1 else "block")
    name = f"{index:03d}-{kind}-{quantized}-{granularity}"
    return {
        "name": name,
        "title": f"{model_name}: {kind} {granularity} {quantized} Q/DQ of {src!r} (node {node.name or node.output[0]!r})"
        + (" - cut to its first rows" if trimmed else ""),
        "source": {"document": model_name, "where": f"node {node.name or node.output[0]!r} ({node.op_type})"},
        "tags": ["imported", kind, quantized, granularity],
        "network": network,
        "outputs": ["y"],
        "inputs": inputs,
        "expect": "reference",
    }


INLINE = 64  # constants up to this many elements are written in the YAML, larger ones as .npy beside it


class _Files:
    """Large constants written as .npy files beside the case file (loaded without pickles, inside cases/)."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def value(self, name: str, array: np.ndarray):
        array = np.asarray(array)
        if array.size <= INLINE or array.dtype.kind not in "fiu":
            return _nested(array)
        file = f"{name}.npy"
        self.arrays[file] = array
        return {"npy": file}


def _nested(array: np.ndarray):
    flat = _values(np.asarray(array))
    if np.ndim(array) == 0:
        return flat[0]
    return np.array(flat, dtype=object).reshape(np.shape(array)).tolist()


def render(model_name: str, cases: list[dict]) -> str:
    lines = [
        "# yaml-language-server: $schema=../../../harness/schema/case.schema.json",
        f"# Written by `qdq import {model_name}`: the model's distinct Q/DQ configurations, expectations from the",
        "# contract model (`reference`). Edit freely: state values you know, declare what a backend does.",
        "cases:",
    ]
    for c in cases:
        lines.append(f"  - name: {c['name']}")
        for key in ("title", "source", "tags"):
            lines.append(f"    {key}: {json.dumps(c[key])}")
        lines.append("    network:")
        lines += [f"      - {json.dumps(layer)}" for layer in c["network"]]
        for key in ("outputs", "inputs", "expect"):
            lines.append(f"    {key}: {json.dumps(c[key])}")
    return "\n".join(lines) + "\n"


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def graph_problem(graph) -> str | None:
    """What makes a graph unreadable as a dataflow, or None: every input a node names must be a graph input, an
    initializer or the output of an earlier node (ONNX requires topological order, so a cycle or a missing tensor
    shows here), and every Quantize/Dequantize has its input and scale."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    for index, node in enumerate(graph.node):
        label = f"node {node.name or index!r} ({node.op_type})"
        if node.op_type in QDQ_OPS and (len(node.input) < 2 or not node.input[0] or not node.input[1]):
            return f"{label} lacks its input or its scale (ONNX requires both)"
        missing = next((name for name in node.input if name not in known), None)
        if missing is not None:
            return (
                f"{label} reads {missing!r}, which no earlier node, initializer or graph input makes (a cycle, "
                "nodes out of topological order, or a missing tensor)"
            )
        known.update(node.output)
    return None


def import_command(source: str, output: Path | None, force: bool = False) -> tuple[int, str]:
    """`qdq import model.onnx [-o DIR]` (default cases/imported/<model name>)."""
    import onnx

    from harness.results import ownership

    path = Path(source)
    if not path.is_file():
        return 2, f"{source}: no such model file"
    out = Path(output) if output else Path("cases") / "imported" / path.stem
    refusal = None if force else ownership.problem(out, ownership.IMPORT_MARKER, "imported cases", "-o")
    if refusal:
        return 2, refusal
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        return 2, f"{source}: not a readable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    problem = graph_problem(model.graph)
    if problem:
        return 2, f"{source}: {problem}; nothing written"
    try:
        files, infos = _Files(), value_infos(model)
        cases = configurations(model, path.name, files, infos)
        cases += layer_cases(model, path.name, files, len(cases), infos)
    except Exception as exc:  # the last guard: a model the importer does not understand is one line, not a traceback
        return 2, (
            f"{source}: the importer failed on this model ({type(exc).__name__}: {str(exc)[:200]}); nothing "
            "written; please report it with the model"
        )
    if not cases:
        return 1, f"{source}: no QuantizeLinear/DequantizeLinear with a constant scale found; nothing written"
    ownership.claim(out, ownership.IMPORT_MARKER, f"qdq import {path.name}")
    target = out / "qdq.yaml"
    target.write_text(render(path.name, cases))
    for name, array in files.arrays.items():
        np.save(out / name, array, allow_pickle=False)
    from harness.cases.load import check_file, find_root

    loaded, problems = check_file(target, find_root(target))
    if problems:
        return 1, f"{target}: written, but it does not load: {problems[0]}"
    return 0, f"{target}: {len(loaded)} case(s), one per distinct Q/DQ configuration of {path.name}"

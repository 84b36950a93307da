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


def configurations(model, model_name: str, files: "_Files", infos: dict, owner: dict, start: int = 0) -> list[dict]:
    """The distinct Q/DQ configurations of the nodes no layer case holds, each as a case body; `owner` gets each
    node's case (a node whose configuration an earlier case already states belongs to that case)."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    cases = []
    by_key: dict = {}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or _node_id(node) in owner:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        src = node.input[0]
        scale_name = node.input[1]
        if scale_name not in inits:
            continue  # a runtime scale: not a configuration a case can state
        scale = numpy_helper.to_array(inits[scale_name])
        zp = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] in inits else None
        if node.op_type == "DequantizeLinear" and src in producers and producers[src].op_type == "QuantizeLinear":
            continue  # the pair is imported from its QuantizeLinear (and accounted with it below)
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
        if key not in by_key:
            body = _case(
                infos, node, kind, quantized, real, scale, zp, axis, inits, model_name, start + len(cases), files
            )
            cases.append(body)
            by_key[key] = body["name"]
        owner[_node_id(node)] = by_key[key]
        if node.op_type == "QuantizeLinear":  # its DequantizeLinear (same scale) is the other half of the case
            for dq in consumers.get(node.output[0], []):
                if dq.op_type == "DequantizeLinear" and _node_id(dq) not in owner:
                    owner[_node_id(dq)] = by_key[key]
    return cases


def _node_id(node) -> str:
    return node.name or node.output[0]


def layer_cases(model, model_name: str, files: "_Files", infos: dict, owner: dict) -> tuple[list[dict], dict]:
    """Each compute node with Q/DQ around it as a case (plugins/onnx/islands.py); `owner` gets the Q/DQ nodes each
    case is the first to hold. Returns the cases and, for Q/DQ nodes feeding a layer that could not be written, why."""
    from plugins.onnx import islands

    graph = islands.Graph(model, infos)
    cases, why_not = [], {}
    for node in model.graph.node:
        if node.op_type not in islands.COMPUTE_OPS:
            continue
        tag = f"{len(cases):03d}-{node.op_type.lower()}"
        body, nodes, why = islands.build(graph, node, files, tag, _case_type, model_name, seed=10 * len(cases))
        if body is None:
            for i in node.input:
                dq = graph.producers.get(i)
                if dq is not None and dq.op_type in QDQ_OPS:
                    why_not.setdefault(_node_id(dq), (f"{dq.op_type} -> {node.op_type}", why))
            continue
        for n in nodes:
            owner.setdefault(_node_id(n), tag)
        cases.append(body)
    return cases, why_not


def unaccounted(model, owner: dict, why_not: dict) -> list[tuple[str, str, str]]:
    """(node, pattern, reason) of every Q/DQ node no case holds: with `owner`, every Q/DQ node is in exactly one."""
    inits = {i.name for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    out = []
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS or _node_id(node) in owner:
            continue
        if _node_id(node) in why_not:
            pattern, reason = why_not[_node_id(node)]
        elif len(node.input) < 2 or node.input[1] not in inits:
            pattern, reason = node.op_type, "its scale is computed at run time, not a constant a case can state"
        elif node.op_type == "DequantizeLinear" and node.input[0] not in inits and node.input[0] not in producers:
            pattern, reason = "network input -> DequantizeLinear", "a Dequantize of a quantized network input"
        else:
            pattern, reason = node.op_type, "a type or layout the case format cannot state"
        out.append((_node_id(node), pattern, reason))
    return out


def _case(infos, node, kind, quantized, real, scale, zp, axis, inits, model_name, index, files) -> dict:
    from onnx import numpy_helper

    src = node.input[0]
    network = []
    if kind == "activation":
        shape = _shape(infos, src, inits) or [1, 4]
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
        value = numpy_helper.to_array(inits[src])  # whole: a large tensor goes to a .npy file beside the case
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
    network.append(
        {
            "op": "constant",
            "name": "s",
            "dtype": _case_type(inits[node.input[1]].data_type),
            "shape": list(scale.shape),
            "value": files.value(f"{index:03d}-s", scale),
        }
    )
    zp_layer = {}
    if zp is not None:
        network.append(
            {
                "op": "constant",
                "name": "zp",
                "dtype": quantized,
                "shape": list(zp.shape),
                "value": files.value(f"{index:03d}-zp", zp),
            }
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
        "title": f"{model_name}: {kind} {granularity} {quantized} Q/DQ of {src!r} (node {node.name or node.output[0]!r})",
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
        for key in ("title", "source", "tags", "runs_quantized"):
            if key in c:
                lines.append(f"    {key}: {json.dumps(c[key])}")
        lines.append("    network:")
        lines += [f"      - {json.dumps(layer)}" for layer in c["network"]]
        for key in ("outputs", "inputs", "expect", "overrides"):
            if key in c:
                lines.append(f"    {key}: {json.dumps(c[key])}")
    return "\n".join(lines) + "\n"


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
ACCOUNTING = "nodes.json"  # beside the cases: which case holds each Q/DQ node, and the nodes no case holds
NOT_IMPORTED = "not-imported.txt"


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
        files, infos, owner = _Files(), value_infos(model), {}
        cases, why_not = layer_cases(model, path.name, files, infos, owner)
        cases += configurations(model, path.name, files, infos, owner, start=len(cases))
        listed = unaccounted(model, owner, why_not)
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
    (out / ACCOUNTING).write_text(
        json.dumps(
            {
                "model": path.name,
                "qdq_nodes": sum(n.op_type in QDQ_OPS for n in model.graph.node),
                "imported": owner,
                "not_imported": [{"node": n, "pattern": p, "reason": r} for n, p, r in listed],
            },
            indent=1,
        )
        + "\n"
    )
    (out / NOT_IMPORTED).unlink(missing_ok=True)
    if listed:
        (out / NOT_IMPORTED).write_text("".join(f"not imported: node {n!r} ({p}): {r}\n" for n, p, r in listed))
    for name, array in files.arrays.items():
        np.save(out / name, array, allow_pickle=False)
    from harness.cases.load import check_file, find_root

    loaded, problems = check_file(target, find_root(target))
    if problems:
        return 1, f"{target}: written, but it does not load: {problems[0]}"
    total = sum(n.op_type in QDQ_OPS for n in model.graph.node)
    lines = [
        f"{target}: {len(loaded)} case(s) from {path.name}; {total} Q/DQ nodes: {len(owner)} in the cases, "
        f"{len(listed)} not imported" + (f" (listed in {out / NOT_IMPORTED})" if listed else "")
    ]
    lines += [f"not imported: node {node!r} ({pattern}): {reason}" for node, pattern, reason in listed]
    return 0, "\n".join(lines)

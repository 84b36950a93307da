"""Cases that run a whole ONNX model (`model: {onnx: file}`, harness/cases/model.py) on the backends that read ONNX.

The model is read from the case's folder (no external data files: a model that needs them is refused, never read
from elsewhere) and every QuantizeLinear / DequantizeLinear output, and every tensor a QuantizeLinear reads, is
added as a graph output: a "probe". Runners return the case's outputs and the probes, and list the probes in model
order in their details (`probes`: tensor, node, op, step), which the cross-backend diff reads to name the first
Q/DQ node where two backends part (harness/engine/probes.py).
"""

from __future__ import annotations

import numpy as np

from harness.cases.case import Case
from harness.cases.errors import QdqError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
FORMAT = "onnx"


def reads(case: Case) -> bool:
    """Whether the case is a whole ONNX model."""
    return case.model is not None and case.model.format == FORMAT


def load_model(case: Case):
    import onnx

    try:
        model = onnx.load_model(str(case.model.path), load_external_data=False)
    except Exception as exc:
        raise QdqError("build-failed", f"{case.model.path.name}: not a readable ONNX model ({exc})") from None
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise QdqError(
                "build-failed",
                f"{case.model.path.name}: initializer {tensor.name!r} is stored in an external file; "
                "save the model with its data inside (onnx.save_model(..., save_as_external_data=False))",
            )
    known = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    known |= {t for node in model.graph.node for t in node.output}
    missing = [name for name in case.outputs if name not in known]
    if missing:
        raise QdqError("build-failed", f"the model has no tensor named {missing} (the case's outputs)")
    inits = {i.name for i in model.graph.initializer}
    wanted = sorted(i.name for i in model.graph.input if i.name not in inits)
    declared = sorted(layer.name for layer in case.network if layer.op == "input")
    if wanted != declared:
        raise QdqError("build-failed", f"the model's inputs are {wanted}; the case declares {declared}")
    return model


def probed(model) -> tuple[object, list[dict]]:
    """The model with every Q/DQ output, and every Quantize's input, as graph outputs; and the probes in node
    order: {tensor, node, op, step, type, input} (step: 1 code for a quantized tensor, the largest |scale| for a
    dequantized one, None for a Quantize's float input; type: the ONNX element type; input: what the node reads)."""
    import onnx
    from onnx import helper, numpy_helper

    types = elem_types(model)
    inits = {i.name: i for i in model.graph.initializer}
    probes, seen = [], set()

    def add(tensor: str, node: str, op: str, step, source: str | None) -> None:
        if tensor in seen or tensor in inits or tensor not in types:
            return
        seen.add(tensor)
        probes.append({"tensor": tensor, "node": node, "op": op, "step": step, "type": types[tensor], "input": source})

    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        name = node.name or node.output[0]
        # `input`: the tensor the node reads, a probe too unless it is a constant of the model (equal everywhere)
        if node.op_type == "QuantizeLinear":
            add(node.input[0], name, "input", None, None)
            add(node.output[0], name, "quantize", 1.0, node.input[0])
            scalars = _scalars(node, inits)
            if scalars and probes[-1]["tensor"] == node.output[0]:
                probes[-1].update(scalars)  # a per-tensor scale: each code can be checked against its input
        else:
            scale = inits.get(node.input[1])
            step = float(np.max(np.abs(numpy_helper.to_array(scale).astype(np.float64)))) if scale is not None else None
            add(node.output[0], name, "dequantize", step, node.input[0])
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for probe in probes:
        if probe["tensor"] not in present:
            copy.graph.output.append(helper.make_tensor_value_info(probe["tensor"], types[probe["tensor"]], None))
    return copy, probes


def probed_case(case: Case) -> tuple[object, list[dict]]:
    """The case's model, probed; each probe of a node `qdq import` put into a case names that case (`case`), from
    the nodes.json the import wrote beside the model."""
    model, probes = probed(load_model(case))
    owners = _owners(case)
    for probe in probes:
        if probe["node"] in owners:
            probe["case"] = owners[probe["node"]]
    return model, probes


def _owners(case: Case) -> dict[str, str]:
    import json

    from plugins.onnx.modelimport import ACCOUNTING

    path = case.model.path.parent / ACCOUNTING
    try:
        imported = json.loads(path.read_text())["imported"] if path.is_file() and path.stat().st_size < 16 << 20 else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    folder = case.id.rsplit("/", 1)[0] + "/" if "/" in case.id else ""
    return {str(node): f"{folder}qdq::{name}" for node, name in imported.items()} if isinstance(imported, dict) else {}


def _scalars(node, inits) -> dict:
    """A Quantize's scale and zero point when each is one number (per tensor): {scale, zero_point}; else {}."""
    from onnx import numpy_helper

    scale = inits.get(node.input[1])
    zero = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scale is None or numpy_helper.to_array(scale).size != 1:
        return {}
    z = numpy_helper.to_array(zero).astype(np.float64).reshape(-1) if zero is not None else np.zeros(1)
    if z.size != 1:
        return {}
    return {"scale": float(numpy_helper.to_array(scale).reshape(-1)[0]), "zero_point": float(z[0])}


def for_reference(model):
    """The model at opset 19 or later: ONNX's reference evaluator has no DequantizeLinear before it."""
    from onnx import helper

    copy = helper.make_model(
        model.graph,
        opset_imports=[
            helper.make_opsetid(o.domain, max(o.version, 19) if o.domain in ("", "ai.onnx") else o.version)
            for o in model.opset_import
        ],
    )
    copy.ir_version = max(model.ir_version, 9)
    return copy


def elem_types(model) -> dict[str, int]:
    """Every tensor's ONNX element type, as shape inference finds it."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    return {v.name: v.type.tensor_type.elem_type for v in values}


def run_probed(case: Case, run, probes: list[dict], feeds: dict) -> dict[str, np.ndarray]:
    """`run(names, feeds)` of a runtime, as the case's outputs plus the probes; a failure is a runtime refusal."""
    names = list(dict.fromkeys([*case.outputs, *(p["tensor"] for p in probes)]))
    try:
        with np.errstate(all="ignore"):
            values = run(names, feeds)
    except QdqError:
        raise
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        raise QdqError("runtime-failed", text.splitlines()[0][:500], native=text, phase="run") from None
    return {name: np.asarray(value) for name, value in zip(names, values)}

"""`qdq import --whole model.onnx`: the model imported node by node (plugins/onnx/modelimport.py), then run whole,
with every Q/DQ node's output compared between the backends that can run an arbitrary ONNX graph on a CPU, so the
first Q/DQ node where two of them part is named, with the case that holds it: where a real model's difference
starts, and which small case to look at.

The model's inputs are drawn from a seed (standard normal, float inputs only). Every QuantizeLinear and
DequantizeLinear output is added as a graph output ("probe"); ONNX Runtime (CPU, its default optimizations) and
ONNX's reference evaluator run the same probed model. Probes are compared in the model's own (topological) order:
they part where any element differs by more than one quantization step (one code for a Quantize output, one scale
for a Dequantize output). TensorRT-RTX's ONNX parser, where installed, builds the whole model on the CPU: its
verdict (built, or NVIDIA's refusal) and, from its builder log, which compute layers run on quantized inputs.

Not a case: the case format holds layers, and a real model has nodes it does not (Softmax, Transpose, Flatten).
`whole.json` and `whole.md` are written beside the imported cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
REPORT = "whole.json"


def whole_command(source: str, output: Path | None, force: bool = False, seed: int = 0) -> tuple[int, str]:
    from plugins.onnx.modelimport import import_command

    code, message = import_command(source, output, force)
    if code != 0:
        return code, message
    import onnx

    path = Path(source)
    out = Path(output) if output else Path("cases") / "imported" / path.stem
    model = onnx.load(str(path))
    owner = json.loads((out / "nodes.json").read_text())["imported"]
    try:
        report = compare_whole(model, owner, seed)
    except WholeModelError as exc:
        return 1, f"{message}\n{source}: not run whole: {exc}"
    report["tensorrt-rtx-onnx"] = _rtx_build(path.read_bytes())
    (out / REPORT).write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out / "whole.md").write_text(markdown(report, path.name))
    return 0, message + "\n" + "\n".join(summary_lines(report, path.name))


class WholeModelError(ValueError):
    pass


def draw_inputs(model, seed: int) -> dict[str, np.ndarray]:
    from onnx import TensorProto

    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        if tensor.elem_type != TensorProto.FLOAT:
            raise WholeModelError(f"input {value.name!r} is not float32 (only float inputs are drawn)")
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in tensor.shape.dim]  # a symbolic dimension: 1
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def probed(model):
    """The model with every Q/DQ output (and its own outputs) as graph outputs, in node order; and the probes:
    (tensor, node name, op, the node's scale initializer or None)."""
    import onnx
    from onnx import helper

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    inits = {i.name: i for i in model.graph.initializer}
    probes = []
    for node in model.graph.node:
        if node.op_type in QDQ_OPS and node.output[0] in types:
            scale = inits.get(node.input[1])
            probes.append((node.output[0], node.name or node.output[0], node.op_type, scale))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for tensor, *_ in probes:
        if tensor not in present:
            copy.graph.output.append(helper.make_tensor_value_info(tensor, types[tensor], None))
    return copy, probes


def _run_onnxruntime(model, feeds) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def _run_reference(model, feeds) -> dict[str, np.ndarray]:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    copy = helper.make_model(
        model.graph,
        opset_imports=[
            helper.make_opsetid(o.domain, max(o.version, 19) if o.domain in ("", "ai.onnx") else o.version)
            for o in model.opset_import
        ],
    )
    copy.ir_version = max(model.ir_version, 9)
    names = [o.name for o in copy.graph.output]
    return dict(zip(names, ReferenceEvaluator(copy).run(names, feeds)))


def _step(op: str, scale) -> float | np.ndarray:
    """One quantization step of a probe: a code for a Quantize output, the scale (per element where it is a
    vector along an axis: the largest, conservatively) for a Dequantize output."""
    if op == "QuantizeLinear" or scale is None:
        return 1.0
    from onnx import numpy_helper

    return float(np.max(np.abs(numpy_helper.to_array(scale).astype(np.float64)))) or 1.0


def compare_whole(model, owner: dict, seed: int) -> dict:
    feeds = draw_inputs(model, seed)
    copy, probes = probed(model)
    results = {}
    for name, run in (("onnxruntime", _run_onnxruntime), ("onnx-reference", _run_reference)):
        try:
            results[name] = run(copy, feeds)
        except Exception as exc:  # a backend that cannot run the model is reported, never a traceback
            raise WholeModelError(f"{name} could not run it ({type(exc).__name__}: {str(exc)[:300]})") from None
    a, b = results["onnxruntime"], results["onnx-reference"]
    rows = []
    for tensor, node, op, scale in probes:
        x = np.asarray(a[tensor]).astype(np.float64)
        y = np.asarray(b[tensor]).astype(np.float64)
        step = _step(op, scale)
        same_nan = np.isnan(x) & np.isnan(y)
        diff = np.where(same_nan, 0.0, np.abs(x - y))
        steps = float(np.max(diff) / step) if diff.size else 0.0
        rows.append(
            {
                "node": node,
                "op": op,
                "case": owner.get(node),
                "elements": int(diff.size),
                "differ": int(np.count_nonzero(diff)),
                "max_steps": round(steps, 3),
                # one step, give or take the float32 rounding of a dequantized value (|q| * 2^-24 of a step)
                "parts": bool(steps > 1.001),
            }
        )
    first = next((r for r in rows if r["parts"]), None)
    return {
        "seed": seed,
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "backends": ["onnxruntime", "onnx-reference"],
        "probes": rows,
        "first_parting": first,
        "within_one_step": sum(1 for r in rows if r["differ"] and not r["parts"]),
    }


def _rtx_build(model_bytes: bytes) -> dict:
    """TensorRT-RTX's ONNX parser and builder on the whole model (a CPU build), where installed."""
    try:
        from plugins.tensorrt.wholemodel import build_onnx_model

        return build_onnx_model(model_bytes)
    except Exception as exc:  # a diagnostic beside the comparison: its failure is reported, never fatal
        return {"status": "not run", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}


def summary_lines(report: dict, model_name: str) -> list[str]:
    n = len(report["probes"])
    first = report["first_parting"]
    lines = [
        f"{model_name} run whole (seed {report['seed']}): {n} Q/DQ outputs compared, onnxruntime vs onnx-reference"
    ]
    if first is None:
        lines.append(
            f"  no Q/DQ node parts by more than one step ({report['within_one_step']} within one step: near ties)"
        )
    else:
        lines.append(
            f"  first parting at {first['op']} {first['node']!r} (case {first['case'] or 'none: not imported'}): "
            f"{first['differ']} of {first['elements']} elements differ, up to {first['max_steps']} steps"
        )
    rtx = report.get("tensorrt-rtx-onnx") or {}
    if rtx.get("status") == "built":
        quantized = ", ".join(f"{k} on {'/'.join(v)}" for k, v in rtx.get("layer_types", {}).items()) or "none named"
        lines.append(f"  tensorrt-rtx-onnx: the whole model builds; compute layers as built: {quantized}")
    elif rtx:
        lines.append(f"  tensorrt-rtx-onnx: {rtx.get('status')}: {str(rtx.get('reason', ''))[:300]}")
    return lines


def markdown(report: dict, model_name: str) -> str:
    lines = [
        f"# {model_name}, run whole",
        "",
        *summary_lines(report, model_name),
        "",
        "| node | op | case | differ | max steps |",
    ]
    lines.append("|---|---|---|---|---|")
    for r in report["probes"]:
        mark = " **parts**" if r["parts"] else ""
        lines.append(
            f"| {r['node']} | {r['op']} | {r['case'] or '-'} | {r['differ']}/{r['elements']} | {r['max_steps']}{mark} |"
        )
    return "\n".join(lines) + "\n"

"""`qdq import --whole model.onnx`: the model imported node by node (plugins/onnx/modelimport.py), and the model
itself as one more case, `whole.yaml`, that `qdq run` runs on every backend like any other.

The case names a copy of the model beside it (`model: {onnx: model.onnx}`: the export as it was written, byte for
byte), declares the model's inputs with data drawn from a seed (standard normal; a symbolic dimension is 1) and
expects `observe`: a whole model has no documented values; where TensorRT's contract refuses the model (at its first
bad Q/DQ node), it expects that refusal, and declares for the ONNX backends that ONNX defines the model. Every backend that reads ONNX runs it: ONNX Runtime,
ONNX's reference evaluator, the contract model (its own Quantize/Dequantize inside ONNX's reference evaluator),
TensorRT's and TensorRT-RTX's ONNX parsers; the others skip with their reason. The ONNX runners report every Q/DQ
tensor as a probe, so the cross-backend diff names the first Q/DQ node whose own arithmetic differs between two
backends, and the node case that holds it (nodes.json): the case to look at (harness/engine/probes.py).
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL_FILE = "model.onnx"
CASE_FILE = "whole.yaml"
CASE_TYPES = {1: "float32", 10: "float16", 16: "bfloat16"}  # ONNX element types of inputs the case can draw


def whole_command(source: str, output: Path | None, force: bool = False, seed: int = 0) -> tuple[int, str]:
    import onnx

    from plugins.onnx.modelimport import import_command

    code, message = import_command(source, output, force)
    if code != 0:
        return code, message
    path = Path(source)
    out = Path(output) if output else Path("cases") / "imported" / path.stem
    model = onnx.load(str(path), load_external_data=False)
    try:
        text = case_text(model, path.name, seed)
    except ValueError as exc:
        return 1, f"{message}\n{source}: not written as a whole-model case: {exc}"
    (out / MODEL_FILE).write_bytes(path.read_bytes())
    target = out / CASE_FILE
    target.write_text(text)
    from harness.cases.load import check_file, find_root

    _, problems = check_file(target, find_root(target))
    if problems:
        return 1, f"{message}\n{target}: written, but it does not load: {problems[0]}"
    return 0, (
        f"{message}\n{target}: the whole model as one case ({MODEL_FILE} beside it, inputs drawn with seed {seed}); "
        f"`qdq run {out}` runs it on every backend and names the first Q/DQ node where two backends part"
    )


def contract_refusal(model) -> tuple[str, str] | None:
    """(category, the contract model's message) where TensorRT's documented contract refuses the model at its first
    bad Q/DQ node (plugins/numpy/model.py, the same check the contract model runs), else None."""
    from harness.cases.errors import QdqError
    from plugins.numpy.model import refuse_first

    try:
        refuse_first(model)
    except QdqError as exc:
        return exc.category, exc.message
    return None


def case_text(model, model_name: str, seed: int) -> str:
    inits = {i.name for i in model.graph.initializer}
    network, inputs = [], {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        if tensor.elem_type not in CASE_TYPES:
            raise ValueError(f"input {value.name!r} has ONNX type {tensor.elem_type}; only float inputs are drawn")
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in tensor.shape.dim]  # a symbolic dimension: 1
        network.append({"op": "input", "name": value.name, "dtype": CASE_TYPES[tensor.elem_type], "shape": shape})
        inputs[value.name] = {"random": {"seed": seed, "distribution": "normal"}}
    if not network:
        raise ValueError("the model has no inputs to feed")
    refusal = contract_refusal(model)
    body = {
        "title": f"{model_name}, run whole",
        "source": {"document": model_name, "where": f"the whole model (qdq import --whole, inputs seed {seed})"},
        "tags": ["imported", "whole-model"],
        "network": network,
        "model": {"onnx": MODEL_FILE},
        "outputs": [o.name for o in model.graph.output],
        "inputs": inputs,
        "expect": "observe",
    }
    if refusal is not None:  # what the contract refuses and ONNX defines: both said, as in the node cases
        category, message = refusal
        body["expect"] = {"error": {"category": category}}
        body["overrides"] = [
            {
                "backend": ["onnxruntime", "onnx-reference"],
                "expect": "observe",
                "reason": f"the model means something in ONNX, which allows it; TensorRT's contract refuses it "
                f"({category}, first at {message})",
            }
        ]
        if category == "scale-not-positive":  # measured: TensorRT-RTX builds them (as for the node cases)
            from plugins.onnx.islands import NEGATIVE_SCALE_BUILDS

            body["overrides"].append(NEGATIVE_SCALE_BUILDS)
    lines = [
        "# yaml-language-server: $schema=../../../harness/schema/case.schema.json",
        f"# Written by `qdq import --whole {model_name}`: the model as it was exported, run whole on every backend",
        "# that reads ONNX; the cross-backend diff names the first Q/DQ node where two backends part.",
    ]
    lines += [f"{key}: {json.dumps(value)}" for key, value in body.items()]
    return "\n".join(lines) + "\n"

"""What TensorRT's engine inspector says about precision, in the harness's terms.

The inspector's JSON (ProfilingVerbosity.DETAILED) lists engine layers; an engine layer's name joins the network
layers it fused with " + " (a parser appends " [ONNX Layer: Conv]" to each), and each input carries a
"Format/Datatype" text such as "Thirty-two wide channel vectorized row major Int8 format." This module turns that
into the backend-neutral details the verdict reads: `layer_types` (network layer -> the harness type names of the
inputs of the engine layers that run it) and `engine_layers` (their names, for the message). A silent float fallback
(NVIDIA/TensorRT#4833) gives the same values; these details are how the verdict sees it.
"""

from __future__ import annotations

import json
import re

# Inspector format words -> harness type names (harness/cases/dtypes.py), first match wins.
_FORMATS = [
    (re.compile(p), t)
    for p, t in (
        (r"Int8|INT8", "int8"),
        (r"FP8|Fp8|E4M3", "fp8"),
        (r"Int4|INT4", "int4"),
        (r"FP4|Fp4|E2M1", "fp4"),
        (r"BF16|BFloat16|Bf16", "bfloat16"),
        (r"FP16|Half|Fp16", "float16"),
        (r"FP32|Float|Fp32", "float32"),
        (r"Int32|INT32", "int32"),
        (r"Int64|INT64", "int64"),
        (r"Bool", "bool"),
    )
]


def type_of(fmt: str) -> str:
    for pattern, name in _FORMATS:
        if pattern.search(fmt):
            return name
    return f"unknown ({fmt.strip()[:60]})"


def engine_layers(inspector_json: str) -> dict[str, list[str]]:
    """Engine layer name -> the harness type of each of its inputs. Empty when the text is not inspector JSON."""
    try:
        layers = json.loads(inspector_json).get("Layers", [])
    except (ValueError, AttributeError):
        return {}
    return {
        str(layer.get("Name", "")): [
            type_of(str(t.get("Format/Datatype", ""))) for t in layer.get("Inputs", []) if isinstance(t, dict)
        ]
        for layer in layers
        if isinstance(layer, dict)
    }


def layer_types(engine: dict[str, list[str]]) -> dict[str, list[str]]:
    """Network layer -> the input types of every engine layer that runs it (fused ones included)."""
    out: dict[str, set[str]] = {}
    for name, types in engine.items():
        for part in name.split(" + "):
            network_layer = part.strip().split(" [", 1)[0]  # "c [ONNX Layer: Conv]" from a parser is "c"
            out.setdefault(network_layer, set()).update(types)
    return {k: sorted(v) for k, v in out.items()}


def precision_details(inspector_json: str) -> dict:
    """The details a TensorRT runner records for the verdict's `runs_quantized` check."""
    engine = engine_layers(inspector_json)
    if not engine:
        return {}
    return {"layer_types": layer_types(engine), "engine_layers": list(engine)}

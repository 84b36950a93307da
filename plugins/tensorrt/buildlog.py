"""The built engine's layers, read from the builder's own log: TensorRT-RTX's answer to "did it run quantized?" on a
machine without a GPU.

With `ProfilingVerbosity.DETAILED` and a logger that keeps VERBOSE messages, TensorRT-RTX 1.7's
`build_serialized_network` ends with one message that starts "Layers:" and holds one line per engine layer:

    Name: c_U7_myl0_1, LayerType: correlation, Inputs: [ { Name: ..., Datatype: Int8, Format: ... }], Constants: [...]

(measured on a CPU, 1.7.1.116). Generated pointwise kernels are `kgen` layers named `__myl_<ops>_myl<k>_<i>`; a
network layer the engine keeps as its own kernel (a convolution: `correlation`) is named after it,
`<network name>_U<n>_myl<k>_<i>`. This module turns that into the same backend-neutral details the engine
inspector gives on a GPU (`layer_types`, `engine_layers`), for the verdict's `runs_quantized` check. A network
layer the log does not name is left out (not guessed): the check then says it cannot tell, rather than fail.
"""

from __future__ import annotations

import re

from plugins.tensorrt.inspector import type_of

_LAYER = re.compile(r"^\s*Name: (?P<name>[^,]+), LayerType: (?P<type>[^,]+),(?P<rest>.*)$")
_INPUTS = re.compile(r"Inputs: \[(?P<inputs>.*?)\](?:, (?:Constants|Outputs|TacticName)|\s*$)")
_DATATYPE = re.compile(r"Datatype: (\w+)")
_NAMED = re.compile(r"^(?!__my)(?P<network>.+?)(?:_U\d+)?_myl\d+_\d+$")  # c_U7_myl0_1 -> c


def layers_message(messages: list[tuple[str, str]]) -> str | None:
    """The builder's "Layers:" message (the last one), or None when the log has none."""
    found = [text for _, text in messages if text.lstrip().startswith("Layers:")]
    return found[-1] if found else None


def engine_layers(message: str) -> dict[str, dict]:
    """Engine layer name -> {"type": LayerType, "inputs": [harness type names of its inputs]}."""
    out: dict[str, dict] = {}
    for line in message.splitlines():
        match = _LAYER.match(line)
        if not match:
            continue
        inputs = _INPUTS.search(match.group("rest"))
        types = [type_of(t) for t in _DATATYPE.findall(inputs.group("inputs"))] if inputs else []
        out[match.group("name").strip()] = {"type": match.group("type").strip(), "inputs": types}
    return out


def network_layer(engine_layer: str) -> str | None:
    """The network layer an engine layer is named after (`c_U7_myl0_1` -> `c`); None for generated kernels."""
    match = _NAMED.match(engine_layer)
    return match.group("network") if match else None


def precision_details(messages: list[tuple[str, str]]) -> dict:
    """`layer_types` (network layer -> its engine layer's input types), `engine_layers` (name: type, inputs) and
    the message itself for the report; {} when the log has no "Layers:" message."""
    message = layers_message(messages)
    if message is None:
        return {}
    engine = engine_layers(message)
    layer_types: dict[str, set[str]] = {}
    for name, layer in engine.items():
        network = network_layer(name)
        for part in (network or "").split("+"):  # layers the builder merged: "v_proj+q_proj+k_proj_U9_myl0_1"
            if part:
                layer_types.setdefault(part, set()).update(layer["inputs"])
    return {
        "layer_types": {k: sorted(v) for k, v in layer_types.items()},
        "engine_layers": [
            f"{name} ({layer['type']}: {', '.join(layer['inputs']) or '-'})" for name, layer in engine.items()
        ],
        "layers_source": "builder log (Layers:)",
        "layers": message[:20000],
    }

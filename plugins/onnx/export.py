"""One translator from a case's network to an ONNX model, used by every ONNX-based backend and `qdq export`.

constant -> initializer, cast -> Cast, quantize -> QuantizeLinear, dequantize -> DequantizeLinear. The output type
is always stated: `output_dtype` from opset 21 on, else a zero-valued zero point of the output type (a
QuantizeLinear with neither outputs uint8). A scale's shape decides the ONNX granularity as it does TensorRT's:
one coefficient is per-tensor (no `axis`), 1-D is per-axis with the case's `axis` (copied as written, negative
included), the input's rank is blocked with `axis` = the blocked dimension and `block_size` derived from the
shapes (ceil(D/S), the smallest ONNX accepts).

The opset: by default the lowest that expresses the case (see `minimum_opset`); a case's `onnx: {opset: N}` or
`--opset` can ask for another. ONNX's own rules differ from TensorRT's and the model shows them: an unset axis on a
1-D scale gets ONNX's default 1, zero points are applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.cases import dtypes
from harness.cases.case import Case, Layer
from harness.cases.network import NetworkInfo

ONNX_TYPES = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "bfloat16": TensorProto.BFLOAT16,
    "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8,
    "int4": TensorProto.INT4,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "float64": TensorProto.DOUBLE,
    "fp8": TensorProto.FLOAT8E4M3FN,
    "fp4": TensorProto.FLOAT4E2M1,
    "fp8e5m2": TensorProto.FLOAT8E5M2,
    "int16": TensorProto.INT16,
    "uint16": TensorProto.UINT16,
    "uint4": TensorProto.UINT4,
    "int2": TensorProto.INT2,
    "uint2": TensorProto.UINT2,
}


# Output types ONNX Runtime's Python API cannot return: 2- and 4-bit (stored packed) and FP8 E5M2 ("No
# corresponding Numpy type", measured on 1.32); FP8 E4M3 comes back as bytes and is reinterpreted instead.
READOUT_TYPES = ("int4", "uint4", "fp4", "int2", "uint2", "fp8e5m2")


@dataclass
class Exported:
    model: onnx.ModelProto
    opset: int
    readouts: dict[str, str]  # output name -> name of an appended float read-out (types a runtime cannot return)


def _granularity_attrs(info: NetworkInfo, layer: Layer) -> dict:
    scale_shape = info.shapes[layer.scale]
    input_shape = info.shapes[layer.input]
    if math.prod(scale_shape) == 1 and len(scale_shape) <= 1:
        return {}
    if len(scale_shape) == len(input_shape) and len(input_shape) >= 2:
        blocked = [d for d in range(len(input_shape)) if scale_shape[d] != input_shape[d]]
        if len(blocked) == 1 and scale_shape[blocked[0]] > 0:
            d = blocked[0]
            return {"axis": d, "block_size": math.ceil(input_shape[d] / scale_shape[d])}
        return {"axis": 0, "block_size": 1}
    return {} if layer.axis is None else {"axis": layer.axis}


def _settings(case: Case) -> dict:
    """The case's `onnx:` section (the opset it asks for, ONNX's default output type): the case format's settings
    for this family, read by this family only."""
    return dict(case.raw.get("onnx") or {})


def minimum_opset(case: Case) -> int:
    """The lowest opset whose QuantizeLinear/DequantizeLinear express every layer of the case."""
    info = NetworkInfo(case)
    need = 13
    for layer in case.network:
        if layer.op not in ("quantize", "dequantize"):
            continue
        quantized = layer.output_type if layer.op == "quantize" else info.dtype(layer.input)
        real = info.dtype(layer.input) if layer.op == "quantize" else layer.output_type
        if quantized in ("fp8", "fp8e5m2") or real in ("float16", "bfloat16"):
            need = max(need, 19)
        if quantized in ("int4", "uint4", "int16", "uint16") or "block_size" in _granularity_attrs(info, layer):
            need = max(need, 21)
        if quantized == "fp4" or real != info.dtype(layer.scale):
            need = max(need, 23)
        if quantized in ("int2", "uint2"):
            need = max(need, 25)
    return need


def opset_for(case: Case, asked: int | None = None, minimum: int = 0) -> int:
    """The one rule for the opset a model is written at, by runs and repro scripts alike: the run's `--opset`, else
    the case's `onnx: {opset}`, else the lowest that expresses the case; never below what the runtime needs."""
    return max(minimum, asked or _settings(case).get("opset") or minimum_opset(case))


def export(case: Case, opset: int | None = None, *, readouts: bool = False) -> Exported:
    """The case as an ONNX model. `readouts` appends a float DequantizeLinear(scale 1) output for each INT4/FP4
    output, for runtimes whose Python API cannot return those types (ONNX Runtime)."""
    info = NetworkInfo(case)
    opset = opset_for(case, opset)
    nodes, inits, graph_inputs = [], [], []
    for layer in case.network:
        t = layer.output_type
        if layer.op == "input":
            graph_inputs.append(helper.make_tensor_value_info(layer.name, ONNX_TYPES[t], list(layer.shape)))
        elif layer.op == "constant":
            inits.append(numpy_helper.from_array(info.constant_value(layer.name), layer.name))
        elif layer.op == "cast":
            nodes.append(helper.make_node("Cast", [layer.input], [layer.name], to=ONNX_TYPES[t], name=layer.name))
        elif layer.compute:
            nodes.append(_compute_node(layer, info))
        else:
            nodes.extend(_qdq_nodes(layer, info, opset, inits))
    outputs = [
        helper.make_tensor_value_info(name, ONNX_TYPES[info.dtype(name)], list(info.shapes[name]))
        for name in case.outputs
    ]
    extra = {}
    if readouts:
        for name in case.outputs:
            if info.dtype(name) in READOUT_TYPES:
                read = f"{name}__readout"
                one = f"{name}__readout_scale"
                inits.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
                nodes.append(helper.make_node("DequantizeLinear", [name, one], [read], name=read))
                outputs.append(helper.make_tensor_value_info(read, TensorProto.FLOAT, list(info.shapes[name])))
                extra[name] = read
    graph = helper.make_graph(nodes, case.id.replace("/", "."), graph_inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="qdq-harness")
    model.ir_version = min(model.ir_version, _max_ir_version(opset))
    return Exported(model, opset, extra)


def _max_ir_version(opset: int) -> int:
    # ONNX Runtime rejects IR versions newer than it knows; pick the IR version that shipped with the opset.
    table = {13: 7, 17: 8, 19: 9, 21: 10, 23: 11}
    return max((ir for op, ir in table.items() if op <= opset), default=7) if opset < 24 else onnx.IR_VERSION


def _qdq_nodes(layer: Layer, info: NetworkInfo, opset: int, inits: list) -> list:
    attrs = _granularity_attrs(info, layer)
    inputs = [layer.input, layer.scale]
    nodes = []
    if layer.op == "quantize":
        to = layer.output_type
        if to == "uint8" and layer.zero_point is None and _settings(info.case).get("default_output_type"):
            # ONNX's default: a QuantizeLinear with neither zero point nor output_dtype outputs UINT8.
            nodes.append(helper.make_node("QuantizeLinear", inputs, [layer.name], name=layer.name, **attrs))
            return nodes
        if layer.zero_point is not None:
            inputs.append(layer.zero_point)
        elif opset < 21 or to not in ONNX_TYPES:
            # No output_dtype before opset 21: a zero-valued zero point of the output type states it.
            zp = f"{layer.name}__zero_point"
            inits.append(numpy_helper.from_array(np.zeros(info.shapes[layer.scale], dtypes.dtype(to).np_type), zp))
            inputs.append(zp)
        if opset >= 21 and layer.zero_point is None:
            attrs["output_dtype"] = ONNX_TYPES[to]
        nodes.append(helper.make_node("QuantizeLinear", inputs, [layer.name], name=layer.name, **attrs))
        return nodes
    if layer.zero_point is not None:
        inputs.append(layer.zero_point)
    out, scale_type = layer.output_type, info.dtype(layer.scale)
    if out != scale_type and opset >= 23:
        attrs["output_dtype"] = ONNX_TYPES[out]
        nodes.append(helper.make_node("DequantizeLinear", inputs, [layer.name], name=layer.name, **attrs))
    elif out != scale_type:
        # Before opset 23 the output takes the scale's type: a Cast states the case's output type.
        raw = f"{layer.name}__dq"
        nodes.append(helper.make_node("DequantizeLinear", inputs, [raw], name=layer.name, **attrs))
        nodes.append(helper.make_node("Cast", [raw], [layer.name], to=ONNX_TYPES[out], name=f"{layer.name}__cast"))
    else:
        nodes.append(helper.make_node("DequantizeLinear", inputs, [layer.name], name=layer.name, **attrs))
    return nodes


def _compute_node(layer: Layer, info: NetworkInfo):
    """conv -> Conv, matmul -> MatMul, add -> Add, relu -> Relu, pool -> MaxPool/AveragePool, concat -> Concat."""
    from harness.cases.shapes import window

    if layer.op in ("conv", "pool"):
        kernel = info.shapes[layer.weight][2:] if layer.op == "conv" else tuple(layer.attr("kernel"))
        win = window(layer, tuple(kernel))
        attrs = {"kernel_shape": list(kernel), "strides": list(win["stride"]), "pads": list(win["pads"])}
        if layer.op == "conv":
            attrs.update(dilations=list(win["dilation"]), group=layer.attr("groups", 1))
            return helper.make_node(
                "Conv",
                [layer.input, layer.weight] + ([layer.bias] if layer.bias else []),
                [layer.name],
                name=layer.name,
                **attrs,
            )
        kind = "MaxPool" if layer.attr("kind") == "max" else "AveragePool"  # count_include_pad=0: padding not counted
        return helper.make_node(kind, [layer.input], [layer.name], name=layer.name, **attrs)
    if layer.op == "concat":
        return helper.make_node(
            "Concat",
            list(layer.inputs),
            [layer.name],
            name=layer.name,
            axis=layer.axis if layer.axis is not None else 1,
        )
    onnx_op = {"matmul": "MatMul", "add": "Add", "relu": "Relu"}[layer.op]
    return helper.make_node(onnx_op, list(layer.operands), [layer.name], name=layer.name)


def check(model: onnx.ModelProto) -> None:
    """onnx.checker with full_check (type and shape inference); raises onnx.checker.ValidationError and friends."""
    onnx.checker.check_model(model, full_check=True)


def checked_export(case: Case, opset: int | None, categorize, *, readouts: bool = False) -> Exported:
    """The case's model, checked with onnx.checker's full check; a failure is the backend's build refusal in the
    shared vocabulary (`categorize(message, phase)` is the backend's own mapping)."""
    from harness.cases.errors import QdqError

    exported = export(case, opset, readouts=readouts)
    try:
        check(exported.model)
    except Exception as exc:
        raise QdqError(
            categorize(str(exc), "build"), f"onnx.checker: {str(exc).splitlines()[0]}", native=str(exc)
        ) from None
    return exported


def supported_opsets() -> tuple[int, int]:
    """QuantizeLinear/DequantizeLinear as this translator writes them: opset 13 up to the installed onnx's newest."""
    return 13, onnx.defs.onnx_opset_version()


def opset_problem(opset: int | None) -> str | None:
    if opset is None:
        return None
    low, high = supported_opsets()
    if not low <= opset <= high:
        return f"--opset {opset} is outside the opsets the ONNX translator supports ({low} to {high})"
    return None


def export_command(case: Case, output, options: dict) -> tuple[int, str]:
    """`qdq export CASE -o model.onnx`: the model (checked with onnx.checker's full check; a model that fails it is
    not written) and its inputs as `<model>.<input>.npy` beside it, so two exports never overwrite each other."""
    from pathlib import Path

    import numpy as np

    from harness.engine.execute import make_inputs

    output = Path(output)
    if case.model is not None:
        return 2, f"{case.id} runs a whole model file: {case.model.path} is the model (nothing to translate)"
    opset = options.get("opset")
    problem = opset_problem(opset)
    if problem:
        return 2, problem
    if opset and opset < minimum_opset(case):
        return 2, f"{case.id} needs opset {minimum_opset(case)} or newer to express its Q/DQ layers (asked for {opset})"
    exported = export(case, opset)
    try:
        check(exported.model)
    except Exception as exc:
        return 1, (
            f"the model of {case.id} (opset {exported.opset}) fails onnx.checker: "
            f"{str(exc).splitlines()[0]}; nothing written"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(exported.model.SerializeToString())
    written = []
    for name, value in make_inputs(case).items():
        target = output.parent / f"{output.stem}.{name}.npy"
        np.save(target, value, allow_pickle=False)
        written.append(target.name)
    return 0, (
        f"{output}: opset {exported.opset}, passes onnx.checker (full_check); inputs: {', '.join(written) or 'none'}"
    )


def is_ours(path) -> bool:
    """An ONNX file `qdq export` wrote (its producer is qdq-harness): the only kind an export may replace."""
    import onnx

    return onnx.load(str(path), load_external_data=False).producer_name == "qdq-harness"


export_command.is_ours = is_ours

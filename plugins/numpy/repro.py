"""The `numpy` backend's repro script: the reference's own quantize/dequantize, standalone."""

from __future__ import annotations

import inspect

from harness.cases.case import Case
from harness.cases.network import NetworkInfo
from harness.engine.scripts import FOOTER, array_code, finish, header, inputs_code


def script(case: Case) -> str:
    from plugins.numpy import backend as ref

    info = NetworkInfo(case)
    compute = [layer.name for layer in case.network if layer.compute]
    if compute:
        raise ValueError(
            f"the numpy repro script writes Q/DQ layers only; {case.id} has compute layers "
            f"({', '.join(compute)}): `qdq repro --backend onnxruntime` or `qdq export` write its model"
        )
    body = [
        header(case, "the numpy reference of TensorRT's documented contract"),
        "",
        "DTYPES = {'float32': np.float32, 'float16': np.float16, 'bfloat16': ml_dtypes.bfloat16, 'int8': np.int8,",
        "          'int4': ml_dtypes.int4, 'fp8': ml_dtypes.float8_e4m3fn, 'fp4': ml_dtypes.float4_e2m1fn,",
        "          'uint8': np.uint8, 'int32': np.int32, 'int64': np.int64, 'float64': np.float64}",
        "RANGES = {'int8': (-128, 127), 'int4': (-8, 7), 'fp8': (-448.0, 448.0), 'fp4': (-6.0, 6.0)}",
        "",
        "",
        inputs_code(case),
        "",
        f"CHUNK = {ref.CHUNK}",
        "",
        "",
        _standalone(inspect.getsource(ref.quantize)),
        "",
        _standalone(inspect.getsource(ref._quantize_slice)),
        "",
        _standalone(inspect.getsource(ref.dequantize)),
        "",
        "def run():",
        "    t = dict(INPUTS)",
    ]
    for layer in case.network:
        if layer.op == "constant":
            body.append(
                f"    t[{layer.name!r}] = {array_code(info.constant_value(layer.name))}"
                f".reshape({list(info.shapes[layer.name])})"
            )
        elif layer.op == "cast":
            body.append(f"    t[{layer.name!r}] = t[{layer.input!r}].astype(DTYPES[{layer.output_type!r}])  # cast")
        elif layer.op in ("quantize", "dequantize"):
            g = info.scale_granularity(layer)
            shape = list(info.shapes[layer.input])
            if g.kind == "per-tensor":
                scale = f"np.broadcast_to(t[{layer.scale!r}].reshape(()), {shape})"
            elif g.kind == "per-channel":
                view = [1] * len(shape)
                view[g.axis] = shape[g.axis]
                scale = f"np.broadcast_to(t[{layer.scale!r}].reshape({view}), {shape})"
            else:
                scale = f"np.repeat(t[{layer.scale!r}], {g.block}, axis={g.axis})"
            body.append(
                f"    t[{layer.name!r}] = {layer.op}(t[{layer.input!r}], {scale}, {layer.output_type!r})  # {g.kind}"
            )
    body.append(f"    return {{name: t[name] for name in {case.outputs!r}}}")
    return finish("\n".join(body) + "\n" + FOOTER)


def _standalone(source: str) -> str:
    """The reference's arithmetic, with its harness lookups replaced by the script's own tables."""
    source = source.replace("t = dtypes.dtype(to)\n", "lo, hi = RANGES[to]\n")
    source = source.replace("np.float32(t.qmin), np.float32(t.qmax)", "np.float32(lo), np.float32(hi)")
    source = source.replace('if t.kind == "int":', 'if to in ("int8", "int4"):')
    source = source.replace("t.np_type", "DTYPES[to]")
    source = source.replace('if t.name == "fp4":', 'if to == "fp4":')
    source = source.replace("dtypes.dtype(to).np_type", "DTYPES[to]")
    return source

"""`numpy-fused`: an integer-exact model of the kernel TensorRT builds when it fuses DQ -> conv/matmul -> [relu] -> Q
into one INT8 kernel (NVIDIA's account: NVIDIA/Model-Optimizer#869, "TRT fuses DQ->Conv->Clip->Q into one INT8
kernel, INT32 accumulate, requantize"), next to the float simulation that ONNX Runtime and QAT compute (`numpy`).

Where a Quantize to INT8 reads (through an optional relu) a conv or matmul whose operands are Dequantizes of INT8
codes (per-tensor activation; per-tensor or per-output-channel weights), with a per-tensor output scale:

    acc[c]  = sum(xq * wq)                                   exact integer accumulation (INT32 in the kernel)
    v[c]    = float32(float32(acc[c]) * float32(sx * sw[c]))  dequantize the sums: one float32 multiply
    v[c]    = float32(v[c] + bias[c])                         the bias, in float32
    v[c]    = relu(v[c])
    q[c]    = saturate(round_half_even(float32(v[c] * float32(1/sy))))   requantize: a second multiply, INT8

The epilogue's order is the one NVIDIA's builder prints for this fusion (TensorRT-RTX 1.7.1, "Layers:" in its
VERBOSE log on a CPU): a generated kernel `MulAddReluMulMinMaxRounCast` after the INT8 convolution, whose output is
Float: scale, bias, relu, scale, clamp, round, cast; without a bias `MulMulMinMaxRounCast`. So two float32
multiplies around the bias and relu, not one combined scale (cases/layers/fused-vs-simulated.yaml shows where the
two differ).

TensorRT does not document its requantization rounding (NVIDIA/TensorRT#3009: exact .5 ties went to 0 or 1 by
kernel size); this model states one. Every other layer runs as in `numpy`. A difference between the two is a
"fused vs simulated" difference (labelled by the cross-backend diff with its size in output steps), not a bug
of either by itself.
"""

from __future__ import annotations

import numpy as np

import harness
from harness.engine.backend import Availability, Backend, Runner
from harness.cases.case import Case, Layer
from harness.cases.network import GranularityError, NetworkInfo
from plugins.numpy import ops
from plugins.numpy.backend import _Built, _Runner


def _zero(info: NetworkInfo, layer: Layer) -> bool:
    """No zero point, or a constant one of zeros (exporters write them explicitly): symmetric quantization."""
    if layer.zero_point is None:
        return True
    return info.constant_root(layer.zero_point) is not None and not np.any(info.constant_value(layer.zero_point))


def _int8_dq(info: NetworkInfo, name: str, channel_axis: int | None):
    """(codes layer, per-element-of-channel scale array) when `name` is a Dequantize of INT8 codes with a per-tensor
    scale, or per-channel along `channel_axis`; else None."""
    layer = info.layers[name]
    if layer.op != "dequantize" or info.dtype(layer.input) != "int8" or not _zero(info, layer):
        return None
    try:
        g = info.scale_granularity(layer)
    except GranularityError:
        return None
    scale = info.constant_value(layer.scale).astype(np.float32)
    if g.kind == "per-tensor":
        return layer, scale.reshape(())
    rank = len(info.shapes[layer.input])
    if g.kind == "per-channel" and channel_axis is not None and g.axis == channel_axis % rank:
        return layer, scale.reshape(-1)
    return None


def fused_pattern(info: NetworkInfo, q: Layer) -> dict | None:
    """The fusable chain behind a Quantize, or None."""
    if q.op != "quantize" or q.output_type != "int8" or not _zero(info, q):
        return None
    try:
        if info.scale_granularity(q).kind != "per-tensor":
            return None
    except GranularityError:
        return None
    src, relu = info.layers[q.input], False
    if src.op == "relu":
        src, relu = info.layers[src.input], True
    if src.op == "conv":
        x, w = _int8_dq(info, src.input, None), _int8_dq(info, src.weight, 0)
        bias = src.bias
    elif src.op == "matmul":
        x, w = _int8_dq(info, src.inputs[0], None), _int8_dq(info, src.inputs[1], -1)
        bias = None
    else:
        return None
    if x is None or w is None or (bias is not None and info.constant_root(bias) is None):
        return None
    return {
        "op": src,
        "x": x,
        "w": w,
        "bias": bias,
        "relu": relu,
        "sy": info.constant_value(q.scale).astype(np.float32).reshape(()),
    }


class _FusedRunner(_Runner):
    def __init__(self, built: _Built):
        super().__init__(built)
        info = built.info
        self.patterns = {layer.name: p for layer in built.case.network if (p := fused_pattern(info, layer))}
        self.details = {"fused": sorted(self.patterns)}

    def quantize_layer(self, layer: Layer, tensors: dict) -> np.ndarray | None:
        p = self.patterns.get(layer.name)
        if p is None:
            return None
        info = self.built.info
        (xl, sx), (wl, sw) = p["x"], p["w"]
        xq = tensors[xl.input].astype(np.float64)
        wq = (tensors[wl.input] if wl.input in tensors else info.constant_value(wl.input)).astype(np.float64)
        op = p["op"]
        if op.op == "conv":
            acc = ops.conv(op, xq, wq, None, dtype=np.float64)
            channel = (1, -1, 1, 1)
        else:
            acc = np.matmul(xq, wq)
            channel = (-1,)
        dequantize = np.multiply(np.float32(sx), sw.astype(np.float32), dtype=np.float32)
        v = np.multiply(acc.astype(np.float32), dequantize.reshape(channel) if dequantize.ndim else dequantize)
        if p["bias"] is not None:
            v = np.add(v, info.constant_value(p["bias"]).astype(np.float32).reshape(channel), dtype=np.float32)
        if p["relu"]:
            v = np.maximum(v, np.float32(0))
        v = np.multiply(v, np.float32(1) / p["sy"], dtype=np.float32)
        return np.clip(np.rint(v), -128, 127).astype(np.int8)


class NumpyFused(Backend):
    name = "numpy-fused"
    product = "numpy model of a fused INT8 conv/matmul kernel (integer accumulation, stated requantization)"
    description = (
        "DQ->conv/matmul->[relu]->Q as one INT8 kernel: exact integer sums, then scale, bias, relu, scale, RNE"
    )
    isolated = False
    arithmetic = "fused"  # the cross-backend diff labels its differences from simulating backends

    def availability(self) -> Availability:
        return Availability(True, harness.__version__, "")

    def skip_reason(self, case: Case) -> str | None:
        if case.model is not None:
            return "models fused kernels of layers written in the case format, not a whole model file"
        # Without a chain to fuse it computes exactly what `numpy` does: running it would only repeat that.
        try:
            info = NetworkInfo(case)
            found = any(fused_pattern(info, layer) for layer in case.network if layer.op == "quantize")
        except Exception:  # a case this model cannot read (bad data, a refused layout): numpy judges it
            found = False
        if not found:
            return "no DQ -> conv/matmul -> [relu] -> Q chain to fuse: the same arithmetic as numpy"
        return None

    def load(self, case: Case) -> Runner:
        return _FusedRunner(_Built(case))

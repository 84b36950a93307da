"""`numpy`: an executable model of TensorRT's *documented* Q/DQ contract (not of ONNX).

Quantize:   q = saturate(round_half_even(x * (1/s)))   [+ zero point, which must be zero]
Dequantize: y = (q - zp) * s

Arithmetic: inputs (FP32/FP16/BF16) are widened to float32; the reciprocal 1/s is taken in float32 and multiplied
in float32, as TensorRT's docs describe quantization ("reciprocal scale"); the cookbook's printed output depends
on it (scenario 1, x = 30: x/s gives 64, x*(1/s) gives the printed 63). Saturation: INT8 [-128, 127],
INT4 [-8, 7]; FP8 E4M3 clips to ±448 then rounds to nearest even; FP4 E2M1 clips to ±6 then rounds (ml_dtypes
casts do not saturate, so the clip comes first). Dequantize computes in float32 and rounds once to the output type.

Non-finite inputs (undocumented by TensorRT; this reference's policy): ±Inf saturate to the type's ends; NaN becomes
0 for INT8/INT4/FP4 (they have no NaN; PTX's saturating float-to-int conversion also gives 0) and stays NaN for FP8.

Where the documents contradict each other, this reference takes one side, and a case shows the other:
- per-channel quantization of activations: allowed (the cookbook's scenario 2 quantizes a network input per
  channel); NvInfer.h 11.1 says "Activations cannot be quantized per-channel" (cases/rules/per-channel-activation).
- block quantization: scale of the input's rank, one blocked dimension among the last two, any block size that
  divides it, for INT4/FP8/FP4 (NvInfer.h 10.13+, the operator docs' example uses blocks of 2); the user guide's
  "block sizes {64, 128}" is not enforced (cases/rules/int4-block-size).
- scale: must be a build-time constant (operator docs); NvInfer.h 10.13+ no longer says so for the scale.
- axis: only matters for a per-channel scale, where it must be set and in range; the 8.x cookbook's "unexpected
  negative axis" for an unset axis on a per-tensor scale is shown as a TensorRT 8.x override (cases/docs).
- types: Quantize input and scale of the same type (FP32/FP16/BF16, operator docs' T1); Dequantize input INT8,
  INT4, FP8 or FP4 (NvInfer.h 10.13+ adds FP4 to the operator docs' list), output FP32/FP16/BF16.
"""

from __future__ import annotations

import math
import numpy as np

import harness
from harness.cases import dtypes
from harness.engine.backend import Availability, Backend, Runner
from harness.cases.case import Case, Layer
from harness.cases.errors import QdqError
from harness.cases.network import GranularityError, NetworkInfo, cast_array
from plugins.numpy import ops

VOLUME_LIMIT = 2**31 - 1
BLOCK_TYPES = ("int4", "fp8", "fp4")


CHUNK = 1 << 20  # elements quantized per pass: one float32 buffer of 4 MiB, reused, instead of one as large as x


def quantize(x: np.ndarray, scale: np.ndarray, to: str, reciprocal: np.ndarray | None = None) -> np.ndarray:
    """Quantize with a scale already broadcast to x's shape. Pure numpy; the contract's arithmetic lives here.
    `reciprocal` (1/s in float32, as broadcast as the scale) may be given precomputed on the compact scale: the same
    values without a full-size temporary. A large x is taken in slices of its first axis: the same element-wise
    arithmetic, with one small float32 buffer reused (a fresh buffer the size of x cost more in page faults than the
    arithmetic itself: 0.7 s for 2^26 elements on a 2-core VM)."""
    t = dtypes.dtype(to)
    if reciprocal is None:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            reciprocal = np.float32(1) / scale.astype(np.float32)
    if x.ndim == 0 or x.size <= CHUNK:
        return _quantize_slice(x, reciprocal, to)
    r = np.asarray(reciprocal).reshape((1,) * (x.ndim - np.ndim(reciprocal)) + np.shape(reciprocal))
    step = max(1, CHUNK // max(1, x[0].size))
    out = np.empty(x.shape, t.np_type)
    for i in range(0, x.shape[0], step):
        out[i : i + step] = _quantize_slice(x[i : i + step], r if r.shape[0] == 1 else r[i : i + step], to)
    return out


def _quantize_slice(x: np.ndarray, reciprocal: np.ndarray, to: str) -> np.ndarray:
    """saturate(round_half_even(x * reciprocal)) in float32, into the type: one float32 buffer, worked in place."""
    t = dtypes.dtype(to)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        v = x.astype(np.float32) if x.dtype != np.float32 else x
        v = np.multiply(v, reciprocal, dtype=np.float32)
    np.clip(v, np.float32(t.qmin), np.float32(t.qmax), out=v)  # NaN passes through clip unchanged
    if t.kind == "int":
        np.copyto(v, np.float32(0), where=np.isnan(v))  # NaN -> 0 (±Inf were clipped already): one pass
        return np.rint(v, out=v).astype(t.np_type)
    if t.name == "fp4":
        np.copyto(v, np.float32(0), where=np.isnan(v))
    return v.astype(t.np_type)  # ml_dtypes casts round to nearest even


def dequantize(q: np.ndarray, scale: np.ndarray, to: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        y = q.astype(np.float32)
        np.multiply(y, scale if scale.dtype == np.float32 else scale.astype(np.float32), out=y)
    return y.astype(dtypes.dtype(to).np_type, copy=False)


class _Built:
    """A checked network: per Q/DQ layer its granularity and constant scale, ready to run."""

    def __init__(self, case: Case):
        self.case = case
        self.info = NetworkInfo(case)
        self.steps: list[tuple[Layer, object]] = []
        for layer in case.network:
            self.steps.append((layer, self._check(layer)))

    def _check(self, layer: Layer):
        info = self.info
        shape = info.shapes[layer.name]
        if shape is not None and math.prod(shape) > VOLUME_LIMIT:
            raise QdqError("volume-limit", f"tensor {layer.name!r} has {math.prod(shape)} elements, over 2^31-1")
        if layer.op == "input":
            return None
        if layer.op == "constant":
            return info.constant_value(layer.name)
        if layer.op == "cast":
            return None
        if layer.compute:
            for operand in layer.operands:
                if info.dtype(operand) not in dtypes.FLOAT_TYPES:
                    raise QdqError(
                        "unsupported-type",
                        f"{layer.op} {layer.name!r}: operand {operand!r} is "
                        f"{info.dtype(operand)}; the float side of a Q/DQ network takes FP32/FP16/BF16",
                    )
            return None
        return self._check_qdq(layer)

    def _check_qdq(self, layer: Layer):
        info, kind = self.info, layer.op
        in_type, out_type, scale_type = info.dtype(layer.input), layer.output_type, info.dtype(layer.scale)
        if kind == "quantize":
            if in_type not in dtypes.FLOAT_TYPES:
                raise QdqError("unsupported-type", f"Quantize input {layer.input!r} is {in_type}; FP32/FP16/BF16 only")
            if out_type not in dtypes.QUANTIZED_TYPES:
                raise QdqError("unsupported-type", f"Quantize output type {out_type}; INT8/INT4/FP8/FP4 only")
            if scale_type != in_type:
                raise QdqError(
                    "unsupported-type", f"Quantize scale is {scale_type}, input is {in_type}: they must match"
                )
        else:
            if in_type not in dtypes.QUANTIZED_TYPES:
                raise QdqError(
                    "unsupported-type", f"Dequantize input {layer.input!r} is {in_type}; INT8/INT4/FP8/FP4 only"
                )
            if out_type not in dtypes.FLOAT_TYPES:
                raise QdqError("unsupported-type", f"Dequantize output type {out_type}; FP32/FP16/BF16 only")
            if scale_type not in dtypes.FLOAT_TYPES:
                raise QdqError("unsupported-type", f"Dequantize scale is {scale_type}; a float type is required")
        if len(info.shapes[layer.input]) == 0:
            raise QdqError("scalar-input", f"{kind} input {layer.input!r} is a scalar")
        if info.constant_root(layer.scale) is None:
            raise QdqError("scale-not-constant", f"{kind} scale {layer.scale!r} is not a build-time constant")
        try:
            g = info.scale_granularity(layer)
        except GranularityError as exc:
            raise QdqError(exc.category, f"{kind} {layer.name!r}: {exc}") from None
        quantized_type = out_type if kind == "quantize" else in_type
        if g.kind == "block" and quantized_type not in BLOCK_TYPES:
            raise QdqError("unsupported-type", f"block quantization of {quantized_type} (documented for INT4/FP8/FP4)")
        scale = info.constant_value(layer.scale)
        with np.errstate(invalid="ignore"):
            if not np.all(scale.astype(np.float64) > 0):
                raise QdqError(
                    "scale-not-positive", f"{kind} {layer.name!r}: scale coefficients must be strictly positive"
                )
        if layer.zero_point is not None:
            if info.constant_root(layer.zero_point) is None:
                raise QdqError(
                    "zero-point-not-constant", f"{kind} zero point {layer.zero_point!r} is not a build-time constant"
                )
            if info.shapes[layer.zero_point] != info.shapes[layer.scale]:
                raise QdqError(
                    "zero-point-shape-mismatch",
                    f"zero point shape {list(info.shapes[layer.zero_point])} "
                    f"differs from scale shape {list(info.shapes[layer.scale])}",
                )
            if np.any(info.constant_value(layer.zero_point).astype(np.float64) != 0):
                raise QdqError("zero-point-nonzero", f"{kind} {layer.name!r}: zero point must only contain zeros")
        # Cast and invert the compact scale, then broadcast: no full-size copy of a per-tensor or per-channel scale.
        scale32 = scale.astype(np.float32)
        shape = info.shapes[layer.input]
        if kind == "dequantize":
            return g.compact(scale32, shape)
        with np.errstate(divide="ignore", over="ignore"):
            return g.compact(scale32, shape), g.compact(np.float32(1) / scale32, shape)


class _Runner(Runner):
    def __init__(self, built: _Built):
        self.built = built

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors: dict[str, np.ndarray] = {}
        for layer, prepared in self.built.steps:
            if layer.op == "input":
                # no copy when the feed has the type already (nothing here writes into an input)
                tensors[layer.name] = np.asarray(feeds[layer.name]).astype(
                    dtypes.dtype(layer.output_type).np_type, copy=False
                )
            elif layer.op == "constant":
                tensors[layer.name] = prepared
            elif layer.op == "cast":
                tensors[layer.name] = cast_array(tensors[layer.input], dtypes.dtype(layer.output_type).np_type)
            elif layer.compute:
                tensors[layer.name] = ops.run(layer, [tensors[name] for name in layer.operands])
            elif layer.op == "quantize":
                fused = self.quantize_layer(layer, tensors)
                if fused is None:
                    scale, reciprocal = prepared
                    fused = quantize(tensors[layer.input], scale, layer.output_type, reciprocal)
                tensors[layer.name] = fused
            else:
                tensors[layer.name] = dequantize(tensors[layer.input], prepared, layer.output_type)
        return {name: tensors[name] for name in self.built.case.outputs}

    def quantize_layer(self, layer: Layer, tensors: dict) -> np.ndarray | None:
        """A Quantize computed another way (the fused model overrides this); None: the contract's own."""
        return None


class NumpyReference(Backend):
    name = "numpy"
    product = "numpy model of TensorRT's documented Q/DQ contract"
    description = (
        "executes TensorRT's documented Q/DQ contract in numpy + ml_dtypes (reciprocal scale, RNE, saturation)"
    )
    isolated = False  # pure Python + numpy: in the pytest process, for speed (with the same timeout)
    models_contract = True  # the default reference of `expect: reference`

    def availability(self) -> Availability:
        # The model is the harness's own code: its version is the harness's (numpy's is in the bundle's environment).
        return Availability(True, harness.__version__, "")

    def skip_reason(self, case: Case) -> str | None:
        if case.model is None:
            return None
        if case.model.format != "onnx":
            return f"runs whole ONNX models (their float operators by onnx.reference), not {case.model.format}"
        from importlib.util import find_spec

        if find_spec("onnx") is None:
            return "a whole ONNX model's float operators run on onnx.reference: pip install 'qdq-harness[onnx]'"
        return None

    def load(self, case: Case) -> Runner:
        if case.model is not None:
            from plugins.numpy.model import ContractModelRunner

            return ContractModelRunner(case)
        return _Runner(_Built(case))

    def repro(self, case: Case) -> str | None:
        if case.model is not None:
            return None  # the model file is its own reproduction
        from plugins.numpy.repro import script

        return script(case)

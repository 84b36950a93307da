"""The type vocabulary of cases: names, numpy/ml_dtypes types, quantized ranges.

Names follow TensorRT's DataType spelled in lower case. Types numpy lacks come from ml_dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class DType:
    name: str
    np_type: np.dtype
    kind: str  # "float" (real-valued, unquantized), "int" (integer), "qfloat" (quantized float: fp8/fp4)
    qmin: float | None = None  # saturation range of a quantized type
    qmax: float | None = None
    bits: int = 0

    @property
    def quantized(self) -> bool:
        return self.qmin is not None

    @property
    def numpy_native(self) -> bool:
        """True when the type round-trips through .npz (ml_dtypes types do not)."""
        return self.np_type.type.__module__ == "numpy"


_TYPES = [
    DType("float32", np.dtype(np.float32), "float", bits=32),
    DType("float16", np.dtype(np.float16), "float", bits=16),
    DType("bfloat16", np.dtype(ml_dtypes.bfloat16), "float", bits=16),
    DType("int8", np.dtype(np.int8), "int", -128, 127, bits=8),
    DType("int4", np.dtype(ml_dtypes.int4), "int", -8, 7, bits=4),
    DType("fp8", np.dtype(ml_dtypes.float8_e4m3fn), "qfloat", -448.0, 448.0, bits=8),
    DType("fp4", np.dtype(ml_dtypes.float4_e2m1fn), "qfloat", -6.0, 6.0, bits=4),
    DType("uint8", np.dtype(np.uint8), "int", 0, 255, bits=8),
    # ONNX's further quantized types (QuantizeLinear/DequantizeLinear, opsets 19-25); TensorRT has no DataType for
    # them, so only the ONNX backends run them and the contract model refuses them as unsupported types.
    DType("fp8e5m2", np.dtype(ml_dtypes.float8_e5m2), "qfloat", -57344.0, 57344.0, bits=8),
    DType("int16", np.dtype(np.int16), "int", -32768, 32767, bits=16),
    DType("uint16", np.dtype(np.uint16), "int", 0, 65535, bits=16),
    DType("uint4", np.dtype(ml_dtypes.uint4), "int", 0, 15, bits=4),
    DType("int2", np.dtype(ml_dtypes.int2), "int", -2, 1, bits=2),
    DType("uint2", np.dtype(ml_dtypes.uint2), "int", 0, 3, bits=2),
    DType("int32", np.dtype(np.int32), "int", bits=32),
    DType("int64", np.dtype(np.int64), "int", bits=64),
    DType("float64", np.dtype(np.float64), "float", bits=64),
]

BY_NAME: dict[str, DType] = {t.name: t for t in _TYPES}
# Aliases people type: TensorRT's enum names and ml_dtypes' names.
ALIASES = {
    "float": "float32",
    "half": "float16",
    "bf16": "bfloat16",
    "fp32": "float32",
    "fp16": "float16",
    "float8_e4m3fn": "fp8",
    "fp8e4m3": "fp8",
    "float4_e2m1fn": "fp4",
    "fp4e2m1": "fp4",
    "float8_e5m2": "fp8e5m2",
}
NAMES = sorted(BY_NAME) + sorted(ALIASES)

FLOAT_TYPES = ("float32", "float16", "bfloat16")
QUANTIZED_TYPES = ("int8", "int4", "fp8", "fp4")


def dtype(name: str) -> DType:
    try:
        return BY_NAME[ALIASES.get(name, name)]
    except KeyError:
        raise KeyError(f"unknown type {name!r}; known: {', '.join(NAMES)}") from None


def dtype_of(array: np.ndarray) -> DType:
    for t in _TYPES:
        if array.dtype == t.np_type:
            return t
    raise KeyError(f"no case type for numpy dtype {array.dtype}")

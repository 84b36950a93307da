"""The compute layers next to Q/DQ, in float32 as ONNX Runtime and QAT frameworks simulate them: the float side of
a quantized network (DQ -> op -> Q). Results are cast back to the first operand's type. Sums are taken in float32
in numpy's order; cases choose data whose sums are exact, so the order cannot matter to a verdict."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from harness.cases.shapes import window


def _padded(x: np.ndarray, pads: tuple[int, int, int, int], value: float) -> np.ndarray:
    t, l, b, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _windows(x: np.ndarray, win: dict) -> np.ndarray:
    """[N, C, OH, OW, KH, KW] views of x (already padded) for the window's kernel, stride and dilation."""
    (kh, kw), (sh, sw), (dh, dw) = win["kernel"], win["stride"], win["dilation"]
    span = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return span[:, :, ::sh, ::sw, ::dh, ::dw]


def conv(layer, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, dtype=np.float32) -> np.ndarray:
    """`dtype` float64 with integer codes gives the exact integer accumulation (every sum below 2^53)."""
    win = window(layer, w.shape[2:])
    groups = layer.attr("groups", 1)
    cols = _windows(_padded(x.astype(dtype), win["pads"], 0.0), win)
    n, c = x.shape[:2]
    k = w.shape[0]
    out = []
    for g in range(groups):
        xs = cols[:, g * c // groups : (g + 1) * c // groups]
        ws = w[g * k // groups : (g + 1) * k // groups].astype(dtype)
        out.append(np.einsum("nchwrs,kcrs->nkhw", xs, ws, dtype=dtype))
    y = np.concatenate(out, axis=1)
    if bias is not None:
        y = y + bias.astype(dtype).reshape(1, -1, 1, 1)
    return y


def pool(layer, x: np.ndarray) -> np.ndarray:
    win = window(layer, tuple(layer.attr("kernel")))
    x32 = x.astype(np.float32)
    if layer.attr("kind") == "max":
        return _windows(_padded(x32, win["pads"], -np.inf), win).max(axis=(4, 5))
    # Average over the window's elements inside the input: padding is not counted (TensorRT's default,
    # average_count_excludes_padding; ONNX AveragePool's count_include_pad=0).
    sums = _windows(_padded(x32, win["pads"], 0.0), win).sum(axis=(4, 5), dtype=np.float32)
    ones = _windows(_padded(np.ones((1, 1) + x.shape[2:], np.float32), win["pads"], 0.0), win).sum(axis=(4, 5))
    return sums / ones


def run(layer, args: list[np.ndarray]) -> np.ndarray:
    op = layer.op
    if op == "relu":
        y = np.maximum(args[0].astype(np.float32), np.float32(0))
    elif op == "add":
        y = np.add(args[0].astype(np.float32), args[1].astype(np.float32))
    elif op == "matmul":
        y = np.matmul(args[0].astype(np.float32), args[1].astype(np.float32))
    elif op == "concat":
        y = np.concatenate([a.astype(np.float32) for a in args], axis=layer.axis if layer.axis is not None else 1)
    elif op == "conv":
        y = conv(layer, args[0], args[1], args[2] if len(args) > 2 else None)
    elif op == "pool":
        y = pool(layer, args[0])
    else:
        raise ValueError(f"no numpy rule for {op!r}")
    return y.astype(args[0].dtype, copy=False)

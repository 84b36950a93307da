"""Output shapes of the compute layers next to Q/DQ (conv, matmul, add, relu, pool, concat), shared by the loader
(to check expected values against them) and NetworkInfo. The semantics are the ones TensorRT and ONNX share:
NCHW 2-D convolution with weights [K, C/groups, R, S], explicit padding (begin/end per spatial dim), no ceil
mode; numpy's matmul broadcasting; numpy's elementwise broadcasting for add."""

from __future__ import annotations

LAYER_ATTRS = ("stride", "padding", "groups", "dilation", "kernel", "kind")


class ShapeError(ValueError):
    pass


def _pair(value, default) -> tuple[int, int]:
    if value is None:
        return default
    value = tuple(value)
    if len(value) != 2:
        raise ShapeError(f"expected 2 values, got {list(value)}")
    return value


def pads(layer) -> tuple[int, int, int, int]:
    """(top, left, bottom, right); `padding: [p, q]` means p top and bottom, q left and right."""
    p = layer.attr("padding")
    if p is None:
        return (0, 0, 0, 0)
    p = tuple(p)
    if len(p) == 2:
        return (p[0], p[1], p[0], p[1])
    if len(p) == 4:
        return p
    raise ShapeError(f"padding takes 2 or 4 values, got {list(p)}")


def window(layer, kernel: tuple[int, int]) -> dict:
    return {
        "stride": _pair(layer.attr("stride"), (1, 1)),
        "dilation": _pair(layer.attr("dilation"), (1, 1)),
        "pads": pads(layer),
        "kernel": kernel,
    }


def _spatial(h: int, w: int, win: dict) -> tuple[int, int]:
    (sh, sw), (dh, dw), (t, l, b, r), (kh, kw) = win["stride"], win["dilation"], win["pads"], win["kernel"]
    oh = (h + t + b - dh * (kh - 1) - 1) // sh + 1
    ow = (w + l + r - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ShapeError(f"the window does not fit: output {oh}x{ow}")
    return oh, ow


def broadcast(a: tuple, b: tuple) -> tuple:
    out = []
    for x, y in zip(reversed((1,) * (len(b) - len(a)) + tuple(a)), reversed((1,) * (len(a) - len(b)) + tuple(b))):
        if x != y and 1 not in (x, y):
            raise ShapeError(f"shapes {list(a)} and {list(b)} do not broadcast")
        out.append(max(x, y))
    return tuple(reversed(out))


def infer_shape(layer, shapes: dict) -> tuple[int, ...]:
    op = layer.op
    if op == "relu":
        return tuple(shapes[layer.input])
    if op == "add":
        if len(layer.inputs) != 2:
            raise ShapeError("add takes `inputs: [a, b]`")
        return broadcast(shapes[layer.inputs[0]], shapes[layer.inputs[1]])
    if op == "matmul":
        if len(layer.inputs) != 2:
            raise ShapeError("matmul takes `inputs: [a, b]`")
        a, b = tuple(shapes[layer.inputs[0]]), tuple(shapes[layer.inputs[1]])
        if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
            raise ShapeError(f"matmul of {list(a)} and {list(b)}: inner dimensions differ or rank < 2")
        return broadcast(a[:-2], b[:-2]) + (a[-2], b[-1])
    if op == "concat":
        if not layer.inputs:
            raise ShapeError("concat takes `inputs: [...]`")
        first = tuple(shapes[layer.inputs[0]])
        axis = layer.axis if layer.axis is not None else 1
        axis = axis % len(first)
        total = 0
        for name in layer.inputs:
            s = tuple(shapes[name])
            if len(s) != len(first) or any(s[d] != first[d] for d in range(len(s)) if d != axis):
                raise ShapeError(f"concat along axis {axis}: {list(s)} does not match {list(first)}")
            total += s[axis]
        return first[:axis] + (total,) + first[axis + 1 :]
    if op == "conv":
        x, w = tuple(shapes[layer.input]), tuple(shapes[layer.weight])
        groups = layer.attr("groups", 1)
        if len(x) != 4 or len(w) != 4:
            raise ShapeError(
                f"conv is 2-D: input [N, C, H, W] and weight [K, C/groups, R, S], got {list(x)}, {list(w)}"
            )
        if x[1] != w[1] * groups or w[0] % groups:
            raise ShapeError(f"conv with {groups} group(s): input channels {x[1]}, weight {list(w)}")
        if layer.bias is not None and tuple(shapes[layer.bias]) != (w[0],):
            raise ShapeError(f"conv bias must have shape [{w[0]}], got {list(shapes[layer.bias])}")
        return (x[0], w[0]) + _spatial(x[2], x[3], window(layer, (w[2], w[3])))
    if op == "pool":
        x = tuple(shapes[layer.input])
        if len(x) != 4:
            raise ShapeError(f"pool is 2-D over [N, C, H, W], got {list(x)}")
        if layer.attr("kind") not in ("max", "average"):
            raise ShapeError("pool needs `kind: max` or `kind: average`")
        kernel = _pair(layer.attr("kernel"), None)
        if kernel is None:
            raise ShapeError("pool needs `kernel: [r, s]`")
        return x[:2] + _spatial(x[2], x[3], window(layer, kernel))
    raise ShapeError(f"no shape rule for {op!r}")

"""Writes cases/coverage/*.yaml: the contract swept over ranks, axes, types, granularities and special values, each
case with literal expected values computed here with exact rational arithmetic (fractions.Fraction), not by the
harness or any backend. `python tests/coverage_cases.py` rewrites the files; tests/test_coverage_cases.py checks
the committed files are what this writes.

Why these values can be stated exactly and independently: every scale is a power of two and every input a
multiple of a quarter of its scale, representable in its type (checked here), so x/s, x*(1/s) and q*s are exact
in every arithmetic order a backend may choose, and the only rounding left is the one under test: round half to
even (Fraction's round) and saturation for integers, nearest-even among the finite values of FP8 E4M3 and FP4
E2M1 (enumerated from their bit layouts here, not from ml_dtypes). Near-tie arithmetic (reciprocal vs division)
has its own hand-written cases in cases/numerics.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction as F
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "cases" / "coverage"

REQ_10_0 = {
    "backend": ["tensorrt", "tensorrt-strongly-typed", "tensorrt-onnx"],
    "version": ">=10.0",
    "reason": "FP8 and INT4 quantize/dequantize arrived in TensorRT 10.0 (docs/tensorrt-versions.md)",
}
REQ_10_8 = {
    "backend": ["tensorrt", "tensorrt-strongly-typed", "tensorrt-onnx"],
    "version": ">=10.8",
    "reason": "FP4 E2M1 quantize/dequantize arrived in TensorRT 10.8 (docs/tensorrt-versions.md)",
}
REQUIRES = {"int8": None, "int4": REQ_10_0, "fp8": REQ_10_0, "fp4": REQ_10_8}

SRC_Q = {"document": "trt-operator-quantize.en.txt", "where": "output = clamp(round(input / scale) + zero_point)"}
SRC_DQ = {"document": "trt-operator-dequantize.en.txt", "where": "output = (input - zero_point) * scale"}
SRC_BLOCK = {
    "document": "include/NvInfer.h (TensorRT 11.1), IQuantizeLayer",
    "where": "block quantization: scale of the input's rank, the last or second to last dimension blocked",
}

SHAPES = {1: [6], 2: [3, 4], 3: [2, 3, 4], 4: [2, 3, 2, 2], 5: [2, 2, 3, 1, 2]}
CHANNEL_SCALES = [F(1, 2), F(1), F(2), F(1, 4), F(4)]
# x / s for each element (cycled): ties of both signs, saturation at both ends, zero, small and large values.
PATTERN = {
    "int8": [
        F(-300),
        F(-129),
        F(-128),
        F(-5, 2),
        F(-7, 4),
        F(-1, 2),
        F(-1, 4),
        F(0),
        F(1, 4),
        F(1, 2),
        F(3, 2),
        F(5, 2),
        F(13, 4),
        F(127),
        F(128),
        F(200),
    ],
    "int4": [
        F(-20),
        F(-9),
        F(-17, 2),
        F(-15, 2),
        F(-5, 2),
        F(-1, 2),
        F(0),
        F(1, 4),
        F(1, 2),
        F(3, 2),
        F(5, 2),
        F(13, 4),
        F(13, 2),
        F(15, 2),
        F(8),
        F(30),
    ],
    "fp8": [
        F(-1000),
        F(-464),
        F(-448),
        F(-13),
        F(-9, 4),
        F(-1, 2),
        F(0),
        F(1, 64),
        F(3, 64),
        F(1, 2),
        F(17, 16),
        F(9),
        F(11),
        F(240),
        F(464),
        F(1000),
    ],
    "fp4": [
        F(-100),
        F(-7),
        F(-5),
        F(-5, 2),
        F(-7, 4),
        F(-1, 4),
        F(0),
        F(1, 4),
        F(3, 4),
        F(5, 4),
        F(7, 4),
        F(5, 2),
        F(7, 2),
        F(5),
        F(6),
        F(13),
    ],
}
MANTISSA_BITS = {"float32": 24, "float16": 11, "bfloat16": 8}
MAX_EXP = {"float32": 127, "float16": 15, "bfloat16": 127}
MIN_EXP = {"float32": -149, "float16": -24, "bfloat16": -133}  # smallest subnormal's exponent


def _float_values(exp_bits: int, man_bits: int, bias: int, skip_top: bool) -> list[F]:
    """Every finite non-negative value of a small float format from its bit layout (E4M3FN: the all-ones code is
    NaN; E2M1: no NaN or Inf)."""
    values = []
    for e in range(2**exp_bits):
        for m in range(2**man_bits):
            if skip_top and e == 2**exp_bits - 1 and m == 2**man_bits - 1:
                continue
            if e == 0:
                values.append((F(m, 2**man_bits) * F(2) ** (1 - bias), m))
            else:
                values.append(((1 + F(m, 2**man_bits)) * F(2) ** (e - bias), m))
    return values


FP8 = _float_values(4, 3, 7, skip_top=True)
FP4 = _float_values(2, 1, 1, skip_top=False)
RANGE = {"int8": (-128, 127), "int4": (-8, 7), "fp8": (-448, 448), "fp4": (-6, 6)}


def quantize(v: F, to: str) -> F:
    """The contract's Quantize of an exact x/s: saturate, then round half to even (integers) or to the nearest
    representable value, ties to the even mantissa (FP8 E4M3, FP4 E2M1)."""
    lo, hi = RANGE[to]
    v = min(max(v, F(lo)), F(hi))
    if to in ("int8", "int4"):
        return F(round(v))
    table = FP8 if to == "fp8" else FP4
    mag = abs(v)
    best = min(table, key=lambda t: (abs(t[0] - mag), t[1] % 2))
    return best[0] if v >= 0 else -best[0]


def representable(v: F, dtype: str) -> bool:
    """Whether a dyadic rational is exactly a value of FP32/FP16/BF16: v = m * 2^k with m odd needs its top bit
    within the exponent range and its lowest bit no finer than the precision (or the smallest subnormal) allows."""
    if v == 0:
        return True
    n, d = abs(v).numerator, abs(v).denominator
    if d & (d - 1):
        return False
    k = -(d.bit_length() - 1)
    while n % 2 == 0:
        n //= 2
        k += 1
    top = k + n.bit_length() - 1
    return top <= MAX_EXP[dtype] and k >= max(MIN_EXP[dtype], top - (MANTISSA_BITS[dtype] - 1))


def num(v: F) -> object:
    if v.denominator == 1:
        return int(v)
    return float(v)  # dyadic: float() is exact and its repr round-trips


def _grid(shape: list[int], scales: list[F]) -> tuple[list[list], list]:
    """Nested lists of values for a shape (scales per element given flat)."""

    def build(dims, flat, start):
        if len(dims) == 1:
            return flat[start : start + dims[0]]
        step = 1
        for d in dims[1:]:
            step *= d
        return [build(dims[1:], flat, start + i * step) for i in range(dims[0])]

    return build(shape, scales, 0)


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _elementwise_scale(
    shape: list[int], kind: str, axis: int | None, block: tuple[int, int] | None, scale_values: list[F]
) -> list[F]:
    """The scale each element of `shape` uses (flat, C order)."""
    n = _size(shape)
    out = []
    for flat in range(n):
        idx, rem = [], flat
        for d in reversed(shape):
            idx.append(rem % d)
            rem //= d
        idx.reverse()
        if kind == "per-tensor":
            out.append(scale_values[0])
        elif kind == "per-channel":
            out.append(scale_values[idx[axis]])
        else:
            bax, bsize = block
            sshape = list(shape)
            sshape[bax] = shape[bax] // bsize
            sidx = list(idx)
            sidx[bax] = idx[bax] // bsize
            k = 0
            for d, i in zip(sshape, sidx):
                k = k * d + i
            out.append(scale_values[k])
    return out


def qdq_case(
    name: str,
    title: str,
    tags: list[str],
    shape: list[int],
    in_type: str,
    to: str,
    kind: str,
    axis: int | None = None,
    block: tuple[int, int] | None = None,
    pattern_offset: int = 0,
    constant: bool = False,
    source: dict | None = None,
) -> dict:
    """x -> Quantize(to) -> q -> Dequantize(to in_type) -> y, outputs q and y, values computed exactly."""
    n = _size(shape)
    if kind == "per-tensor":
        scale_shape, scale_values = [], [F(1, 2) if to != "fp8" else F(1, 4)]
    elif kind == "per-channel":
        scale_shape = [shape[axis]]
        scale_values = [CHANNEL_SCALES[i % len(CHANNEL_SCALES)] for i in range(shape[axis])]
    else:
        bax, bsize = block
        scale_shape = list(shape)
        scale_shape[bax] = shape[bax] // bsize
        scale_values = [CHANNEL_SCALES[i % len(CHANNEL_SCALES)] for i in range(_size(scale_shape))]
    per_element = _elementwise_scale(shape, kind, axis, block, scale_values)
    pattern = PATTERN[to]
    ratios = [pattern[(i * 7 + pattern_offset) % len(pattern)] for i in range(n)]
    if in_type == "bfloat16":  # 8 significant bits: keep the ratios BF16 can hold exactly
        ratios = [r if representable(r, "bfloat16") else F(round(r)) for r in ratios]
    xs = [r * s for r, s in zip(ratios, per_element)]
    for x in xs + scale_values:
        assert representable(x, in_type), (name, x, in_type)
    qs = [quantize(r, to) for r in ratios]
    ys = [q * s for q, s in zip(qs, per_element)]
    for y in ys:
        assert representable(y, in_type), (name, y, in_type)
    x_layer = (
        {"op": "constant", "name": "x", "dtype": in_type, "shape": shape, "value": _grid(shape, [num(v) for v in xs])}
        if constant
        else {"op": "input", "name": "x", "dtype": in_type, "shape": shape}
    )
    network = ([{"op": "input", "name": "unused", "dtype": "float32", "shape": [1]}] if constant else []) + [
        x_layer,
        {
            "op": "constant",
            "name": "s",
            "dtype": in_type,
            "shape": scale_shape,
            "value": _grid(scale_shape, [num(v) for v in scale_values]) if scale_shape else num(scale_values[0]),
        },
    ]
    q = {"op": "quantize", "name": "q", "input": "x", "scale": "s", "to": to}
    dq = {"op": "dequantize", "name": "y", "input": "q", "scale": "s", "to": in_type}
    if kind == "per-channel":
        q["axis"] = dq["axis"] = axis
    network += [q, dq]
    case = {
        "name": name,
        "title": title,
        "source": source or SRC_Q,
        "tags": tags,
        "network": network,
        "outputs": ["q", "y"],
        "inputs": {"unused": [0]} if constant else {"x": _grid(shape, [num(v) for v in xs])},
        "expect": {"values": {"q": _grid(shape, [num(v) for v in qs]), "y": _grid(shape, [num(v) for v in ys])}},
    }
    if REQUIRES[to]:
        case["requires"] = [REQUIRES[to]]
    return case


def per_tensor_cases() -> list[dict]:
    cases = []
    for to in ("int8", "fp8", "fp4"):
        for rank, shape in SHAPES.items():
            for t in ("float32", "float16", "bfloat16"):
                cases.append(
                    qdq_case(
                        f"{to}-per-tensor-rank{rank}-{t}",
                        f"{to.upper()} per-tensor Q/DQ of a rank-{rank} {t} input {shape}",
                        [to, "per-tensor", t, f"rank{rank}"],
                        shape,
                        t,
                        to,
                        "per-tensor",
                        pattern_offset=rank,
                    )
                )
    return cases


def per_channel_cases() -> list[dict]:
    cases = []
    for to in ("int8", "fp8"):
        for rank, shape in SHAPES.items():
            for axis in range(rank):
                for t in ("float32", "float16", "bfloat16"):
                    cases.append(
                        qdq_case(
                            f"{to}-per-channel-rank{rank}-axis{axis}-{t}",
                            f"{to.upper()} per-channel Q/DQ along axis {axis} of a rank-{rank} {t} input {shape}",
                            [to, "per-channel", t, f"rank{rank}", f"axis{axis}"],
                            shape,
                            t,
                            to,
                            "per-channel",
                            axis=axis,
                            pattern_offset=axis,
                            source={
                                "document": "trt-operator-quantize.en.txt",
                                "where": "scale: 1-D tensor for per-channel quantization along axis",
                            },
                        )
                    )
    return cases


def block_cases() -> list[dict]:
    cases = []
    for to in ("int4", "fp8", "fp4"):
        for shape in ([4, 8], [2, 4, 4]):
            rank = len(shape)
            for bax in (rank - 2, rank - 1):
                for bsize in (2, 4):
                    if shape[bax] % bsize or shape[bax] == bsize:
                        continue
                    cases.append(
                        qdq_case(
                            f"{to}-blocks-rank{rank}-axis{bax}-size{bsize}",
                            f"{to.upper()} block Q/DQ of a float32 constant {shape}, blocks of {bsize} along axis {bax}",
                            [to, "block", f"rank{rank}", "weights"],
                            shape,
                            "float32",
                            to,
                            "block",
                            block=(bax, bsize),
                            constant=True,
                            pattern_offset=bsize,
                            source=SRC_BLOCK,
                        )
                    )
    return cases


def int4_weight_cases() -> list[dict]:
    """Per-tensor INT4 of constants (weights) over ranks 1-5: the reference's side of a choice the documents leave
    open (the user guide: INT4 needs block scales; NvInfer.h and the operator docs: any granularity)."""
    cases = []
    for rank, shape in SHAPES.items():
        for t in ("float32", "float16", "bfloat16"):
            case = qdq_case(
                f"int4-per-tensor-weights-rank{rank}-{t}",
                f"INT4 per-tensor Q/DQ of a rank-{rank} {t} constant {shape} (no block scale)",
                ["int4", "per-tensor", "weights", t, f"rank{rank}"],
                shape,
                t,
                "int4",
                "per-tensor",
                constant=True,
                pattern_offset=rank,
                source={
                    "document": "trt-operator-quantize.en.txt",
                    "where": "T2: int8, int4, fp8 (per-tensor allowed; the user guide asks INT4 for block scales)",
                },
            )
            cases.append(case)
    return cases


CODES = {
    "int8": [F(-128), F(-127), F(-2), F(-1), F(0), F(1), F(2), F(64), F(127)],
    "fp8": [F(-448), F(-3, 2), -F(1, 512), F(0), F(1, 64), F(7, 8), F(1), F(240), F(448)],
    "int4": [F(-8), F(-7), F(-2), F(-1), F(0), F(1), F(2), F(6), F(7)],
    "fp4": [F(-6), F(-3), F(-1, 2), F(0), F(1, 2), F(3, 2), F(2), F(4), F(6)],
}


def dq_case(code_type: str, out: str, kind: str, shape: list[int], axis: int | None = None) -> dict:
    """A Dequantize of codes (an INT8/FP8 network input, an INT4/FP4 constant weight) to `out`: y = code * s."""
    n = _size(shape)
    constant = code_type in ("int4", "fp4")
    if kind == "per-tensor":
        scale_shape, scale_values = [], [F(1, 4)]
    else:
        scale_shape = [shape[axis]]
        scale_values = [CHANNEL_SCALES[i % len(CHANNEL_SCALES)] for i in range(shape[axis])]
    per_element = _elementwise_scale(shape, kind, axis, None, scale_values)
    codes = [CODES[code_type][(i * 5 + len(shape)) % len(CODES[code_type])] for i in range(n)]
    ys = [c * sc for c, sc in zip(codes, per_element)]
    for v in ys + scale_values:
        assert representable(v, out), (code_type, out, v)
    grid = _grid(shape, [num(c) for c in codes])
    x = (
        {"op": "constant", "name": "x", "dtype": code_type, "shape": shape, "value": grid}
        if constant
        else {"op": "input", "name": "x", "dtype": code_type, "shape": shape}
    )
    network = ([{"op": "input", "name": "unused", "dtype": "float32", "shape": [1]}] if constant else []) + [
        x,
        {
            "op": "constant",
            "name": "s",
            "dtype": out,
            "shape": scale_shape,
            "value": _grid(scale_shape, [num(v) for v in scale_values]) if scale_shape else num(scale_values[0]),
        },
    ]
    dq = {"op": "dequantize", "name": "y", "input": "x", "scale": "s", "to": out}
    if kind == "per-channel":
        dq["axis"] = axis
    network.append(dq)
    where = "a quantized network input" if not constant else "a quantized constant (weights stored quantized)"
    case = {
        "name": f"dq-{code_type}-{kind}-rank{len(shape)}" + (f"-axis{axis}" if axis is not None else "") + f"-to-{out}",
        "title": f"Dequantize of {where}: {code_type.upper()} {shape}, {kind}, to {out}",
        "source": SRC_DQ,
        "tags": [code_type, kind, "dequantize", out, "quantized-input" if not constant else "weights"],
        "network": network,
        "outputs": ["y"],
        "inputs": {"unused": [0]} if constant else {"x": grid},
        "expect": {"values": _grid(shape, [num(v) for v in ys])},
    }
    if REQUIRES[code_type]:
        case["requires"] = [REQUIRES[code_type]]
    return case


def dequantize_cases() -> list[dict]:
    cases = []
    for code_type in ("int8", "fp8"):
        for out in ("float32", "float16", "bfloat16"):
            cases.append(dq_case(code_type, out, "per-tensor", [3, 3]))
            cases.append(dq_case(code_type, out, "per-channel", [2, 3, 2], axis=1))
            cases.append(dq_case(code_type, out, "per-channel", [2, 3, 4, 2], axis=3))
    for code_type in ("int4", "fp4"):
        for out in ("float32", "float16", "bfloat16"):
            cases.append(dq_case(code_type, out, "per-tensor", [2, 6]))
    return cases


TINY = {"float32": F(1, 2**120), "float16": F(1, 2**14), "bfloat16": F(1, 2**120)}
HUGE = {"float32": F(2**100), "float16": F(2**6), "bfloat16": F(2**100)}


def scale_extreme_cases() -> list[dict]:
    """Tiny and huge scales (powers of two near each type's ends, inputs scaled with them) and subnormal inputs."""
    cases = []
    for t in ("float32", "float16", "bfloat16"):
        for to in ("int8", "fp8"):
            for label, sc in (("tiny", TINY[t]), ("huge", HUGE[t])):
                ratios = [F(-200), F(-5, 2), F(-1, 2), F(0), F(3, 2), F(100)]
                xs = [r * sc for r in ratios]
                qs = [quantize(r, to) for r in ratios]
                ys = [q * sc for q in qs]
                assert all(representable(v, t) for v in xs + ys + [sc]), (t, to, label)
                case = {
                    "name": f"{to}-{label}-scale-{t}",
                    "title": f"{to.upper()} Q/DQ of {t} with a {label} scale ({float(sc):g})",
                    "source": SRC_Q,
                    "tags": [to, "scale", t, f"{label}-scale"],
                    "network": [
                        {"op": "input", "name": "x", "dtype": t, "shape": [6]},
                        {"op": "constant", "name": "s", "dtype": t, "shape": [], "value": num(sc)},
                        {"op": "quantize", "name": "q", "input": "x", "scale": "s", "to": to},
                        {"op": "dequantize", "name": "y", "input": "q", "scale": "s", "to": t},
                    ],
                    "outputs": ["q", "y"],
                    "inputs": {"x": [num(v) for v in xs]},
                    "expect": {"values": {"q": [num(v) for v in qs], "y": [num(v) for v in ys]}},
                }
                if REQUIRES[to]:
                    case["requires"] = [REQUIRES[to]]
                cases.append(case)
        # Subnormal inputs: far below half a step of scale 1/4, every one quantizes to 0.
        smallest = F(1, 2 ** -MIN_EXP[t])
        xs = [smallest, -smallest, smallest * 3, F(1, 2**14) - smallest if t == "float16" else smallest * 5]
        for to in ("int8", "fp8"):
            case = {
                "name": f"{to}-subnormal-inputs-{t}",
                "title": f"{to.upper()} Q/DQ of {t} subnormal inputs (all round to 0)",
                "source": SRC_Q,
                "tags": [to, "subnormal", t],
                "network": [
                    {"op": "input", "name": "x", "dtype": t, "shape": [4]},
                    {"op": "constant", "name": "s", "dtype": t, "shape": [], "value": 0.25},
                    {"op": "quantize", "name": "q", "input": "x", "scale": "s", "to": to},
                    {"op": "dequantize", "name": "y", "input": "q", "scale": "s", "to": t},
                ],
                "outputs": ["y"],
                "inputs": {
                    "x": [
                        f"2**{MIN_EXP[t]}",
                        f"-2**{MIN_EXP[t]}",
                        f"3*2**{MIN_EXP[t]}",
                        "2**-14-2**-24" if t == "float16" else f"5*2**{MIN_EXP[t]}",
                    ]
                },
                "expect": {"values": [0, 0, 0, 0]},
            }
            assert all(representable(v, t) and quantize(v * 4, to) == 0 for v in xs), (t, to)
            if REQUIRES[to]:
                case["requires"] = [REQUIRES[to]]
            cases.append(case)
    return cases


def render(title: str, comment: str, cases: list[dict]) -> str:
    lines = [
        "# yaml-language-server: $schema=../../harness/schema/case.schema.json",
        "# Written by tests/coverage_cases.py (exact rational arithmetic, see there): do not edit by hand.",
        f"# {comment}",
        "tags: [coverage]",
        "cases:",
    ]
    for c in cases:
        lines.append(f"  - name: {c['name']}")
        lines.append(f"    title: {json.dumps(c['title'])}")
        lines.append(f"    source: {json.dumps(c['source'])}")
        lines.append(f"    tags: {json.dumps(c['tags'])}")
        if c.get("requires"):
            lines.append(f"    requires: {json.dumps(c['requires'])}")
        lines.append("    network:")
        lines += [f"      - {json.dumps(layer)}" for layer in c["network"]]
        lines.append(f"    outputs: {json.dumps(c['outputs'])}")
        lines.append(f"    inputs: {json.dumps(c['inputs'])}")
        lines.append(f"    expect: {json.dumps(c['expect'])}")
    return "\n".join(lines) + "\n"


FILES = {
    "per-tensor.yaml": (
        "per-tensor",
        "Per-tensor Q/DQ, ranks 1-5, FP32/FP16/BF16 in and out, INT8/FP8/FP4.",
        per_tensor_cases,
    ),
    "per-channel.yaml": (
        "per-channel",
        "Per-channel Q/DQ on every axis of ranks 1-5, FP32/FP16/BF16, INT8/FP8.",
        per_channel_cases,
    ),
    "blocks.yaml": (
        "blocks",
        "Block Q/DQ of constants along each of the last two axes, blocks of 2 and 4.",
        block_cases,
    ),
    "dequantize.yaml": (
        "dequantize",
        "Dequantize of quantized inputs and weights to FP32/FP16/BF16, per tensor and per channel.",
        dequantize_cases,
    ),
    "scales-and-subnormals.yaml": (
        "scales",
        "Tiny and huge scales, subnormal inputs, per input type.",
        scale_extreme_cases,
    ),
    "int4-weights.yaml": (
        "int4",
        "Per-tensor INT4 of constants, ranks 1-5 (the reference's side of the INT4 choice).",
        int4_weight_cases,
    ),
}


def texts() -> dict[str, str]:
    return {name: render(title, comment, make()) for name, (title, comment, make) in FILES.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in texts().items():
        (OUT / name).write_text(text)
        print(OUT / name, text.count("  - name:"), "cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())

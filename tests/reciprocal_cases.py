"""Writes cases/numerics/reciprocal-vs-division.yaml: `python tests/reciprocal_cases.py`.

Searches float32 inputs next to rounding ties (of the integer grid, or of FP8's) for non-power-of-two scales, and
keeps those where TensorRT's x * fl32(1/s), ONNX's x / s and a float64 computation give different codes; every
value comes from tests/exact.py (exact rational arithmetic). tests/test_exact_values.py checks the written file.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fractions import Fraction as F
import numpy as np
import exact as E


def f32(v):
    return E.round_to(F(v), "float32")


def lit(x):  # the shortest decimal that reads back as the same float32
    return np.format_float_positional(np.float32(float(x)), unique=True, trim="-")


def nbrs(v, n=8):
    x = np.float32(v)
    out = [x]
    a = b = x
    for _ in range(n):
        a = np.nextafter(a, np.float32(-np.inf))
        b = np.nextafter(b, np.float32(np.inf))
        out += [a, b]
    return out


def fp8_grid():
    vals = set()
    for e in range(-6, 9):
        for m in range(8):
            vals.add(F(8 + m, 8) * F(2) ** e)
    for m in range(1, 8):
        vals.add(F(m, 8) * F(2) ** -6)
    pos = sorted(v for v in vals if v <= 448)
    return [0] + pos


def midpoints(to):
    if to in E.INT_RANGES:
        lo, hi = E.INT_RANGES[to]
        return [F(k) + F(1, 2) for k in range(lo, hi)]
    g = fp8_grid()
    g = sorted(set([-v for v in g] + g))
    return [(a + b) / 2 for a, b in zip(g, g[1:])]


def spread(lst, n):  # n items from across the list
    if len(lst) <= n:
        return lst
    idx = np.linspace(0, len(lst) - 1, n).round().astype(int)
    return [lst[i] for i in idx]


def pick(s, to, n=2):
    d_all, f_all = [], []
    for m in midpoints(to):
        for x in nbrs(float(m * s)):
            xf = F(float(x))
            c = E.quantize(xf, s, to)
            if E.quantize(xf, s, to, "divide") != c and xf not in d_all:
                d_all.append(xf)
            if E.quantize(xf, s, to, "float64") != c and xf not in f_all:
                f_all.append(xf)
    both = [x for x in d_all if x in f_all]
    d_only = [x for x in d_all if x not in f_all]
    f_only = [x for x in f_all if x not in d_all]
    return spread(d_only, n) + spread(f_only, n) + spread(both, 1)


def codes(xs, s, to, how="contract"):
    v = [E.quantize(x, s, to, how) for x in xs]
    return [int(c) if to in E.INT_RANGES else num(c) for c in v]


def num(c):
    return int(c) if c.denominator == 1 else lit(c)


SRC = '{document: "include/NvInfer.h (TensorRT 11.1), IQuantizeLayer", where: "output = clamp(round(input / scale)); TensorRT computes input * (1/scale) in float32 (cookbook SimpleExample, x = 30)"}'
REQ = {
    "int4": '    requires: [{backend: [tensorrt, tensorrt-strongly-typed, tensorrt-onnx], version: ">=10.0", reason: "FP8 and INT4 quantize/dequantize arrived in TensorRT 10.0 (docs/tensorrt-versions.md)"}]\n',
    "fp8": '    requires: [{backend: [tensorrt, tensorrt-strongly-typed, tensorrt-onnx], version: ">=10.0", reason: "FP8 and INT4 quantize/dequantize arrived in TensorRT 10.0 (docs/tensorrt-versions.md)"}]\n',
    "int8": "",
}
ONNX = "          ONNX QuantizeLinear divides, x / s in float32 (one rounding); TensorRT's documented arithmetic multiplies by\n          the float32 reciprocal (two roundings). The codes differ where x / s lies within a float32 step of a tie."


def flat(v):
    return "[" + ", ".join(map(str, v)) + "]"


def nested(v, cols):
    return "[" + ", ".join(flat(v[i : i + cols]) for i in range(0, len(v), cols)) + "]"


out = [
    """# yaml-language-server: $schema=../../harness/schema/case.schema.json
# Non-power-of-two scales, inputs chosen next to rounding ties: TensorRT's x * float32(1/s), ONNX's x / s and a
# float64 computation give different codes here (each case holds elements of both kinds). Every value was computed
# in exact rational arithmetic with IEEE rounding written out (tests/exact.py), not by a backend;
# tests/test_exact_values.py recomputes every one of them. Found by planting bugs in the reference
# (tests/test_mutations.py): with power-of-two scales no case could tell x / s from x * (1/s), nor float64 from
# float32.
tags: [rounding, numerics, reciprocal]
outputs: [q]
cases:"""
]


def per_tensor(name, to, st, title):
    s = f32(F(st))
    xs = pick(s, to)
    if to == "int4" and len(xs) % 2:
        xs.append(F(0))  # TensorRT refuses sub-byte tensors of odd volume
    c, d = codes(xs, s, to), codes(xs, s, to, "divide")
    out.append(f"""  - name: {name}
    title: "{title}"
    source: {SRC}
    tags: [{to}, per-tensor]
{REQ[to]}    network:
      - {{op: input, name: x, dtype: float32, shape: [{len(xs)}]}}
      - {{op: constant, name: s, dtype: float32, shape: [], value: "{st}"}}
      - {{op: quantize, name: q, input: x, scale: s, to: {to}}}
    inputs: {{x: {flat([lit(x) for x in xs])}}}
    expect: {{values: {flat(c)}, tolerance: exact}}
    overrides:
      - backend: [onnxruntime, onnx-reference]
        reason: >-
{ONNX}
        expect: {{values: {flat(d)}, tolerance: exact}}""")


per_tensor("int8-per-tensor", "int8", "0.1", "INT8 per-tensor, scale 0.1: x * float32(1/s), not x / s, not float64")
per_tensor("int4-per-tensor", "int4", "1/3", "INT4 per-tensor, scale 1/3: x * float32(1/s), not x / s, not float64")
per_tensor("fp8-per-tensor", "fp8", "0.7", "FP8 E4M3 per-tensor, scale 0.7: x * float32(1/s), not x / s, not float64")

# per-channel: columns = channels (axis 1)
scs = ["0.1", "1/3", "0.45"]
cols = [pick(f32(F(st)), "int8") for st in scs]
rows = min(map(len, cols))
X = [cols[c][r] for r in range(rows) for c in range(3)]
S = [f32(F(scs[i % 3])) for i in range(len(X))]
C = [int(E.quantize(x, s, "int8")) for x, s in zip(X, S)]
D = [int(E.quantize(x, s, "int8", "divide")) for x, s in zip(X, S)]
out.append(f"""  - name: int8-per-channel
    title: "INT8 per-channel (axis 1), scales 0.1, 1/3, 0.45: x * float32(1/s) per channel"
    source: {SRC}
    tags: [int8, per-channel]
    network:
      - {{op: input, name: x, dtype: float32, shape: [{rows}, 3]}}
      - {{op: constant, name: s, dtype: float32, shape: [3], value: {flat(['"' + t + '"' for t in scs])}}}
      - {{op: quantize, name: q, input: x, scale: s, axis: 1, to: int8}}
    inputs: {{x: {nested([lit(x) for x in X], 3)}}}
    expect: {{values: {nested(C, 3)}, tolerance: exact}}
    overrides:
      - backend: [onnxruntime, onnx-reference]
        reason: >-
{ONNX}
        expect: {{values: {nested(D, 3)}, tolerance: exact}}""")

# INT4 blocks of 2 along axis 0 of a [4, 2] constant; scale [2, 2]
bs = [["1/3", "0.7"], ["0.45", "0.37"]]
grid = [[None, None] for _ in range(4)]
for br in range(2):
    for c in range(2):
        s = f32(F(bs[br][c]))
        d_only = [x for x in pick(s, "int4", 4)]
        dd = [x for x in d_only if E.quantize(x, s, "int4", "divide") != E.quantize(x, s, "int4")]
        ff = [x for x in d_only if E.quantize(x, s, "int4", "float64") != E.quantize(x, s, "int4")]
        first = dd[0]
        second = next(x for x in ff if x != first)
        grid[2 * br][c], grid[2 * br + 1][c] = first, second
X = [grid[r][c] for r in range(4) for c in range(2)]
S = [f32(F(bs[r // 2][c])) for r in range(4) for c in range(2)]
C = [int(E.quantize(x, s, "int4")) for x, s in zip(X, S)]
D = [int(E.quantize(x, s, "int4", "divide")) for x, s in zip(X, S)]
out.append(f"""  - name: int4-blocks
    title: "INT4 blocks of 2 along axis 0 of a [4, 2] constant, four non-power-of-two scales"
    source: {{document: "include/NvInfer.h (TensorRT 11.1), IQuantizeLayer", where: "block quantization; output = clamp(round(input / scale)), computed as input * (1/scale)"}}
    tags: [int4, block, weights]
{REQ["int4"]}    network:
      - {{op: input, name: unused, dtype: float32, shape: [1]}}
      - {{op: constant, name: x, dtype: float32, shape: [4, 2], value: {nested([lit(x) for x in X], 2)}}}
      - {{op: constant, name: s, dtype: float32, shape: [2, 2], value: [{", ".join(flat(['"' + t + '"' for t in row]) for row in bs)}]}}
      - {{op: quantize, name: q, input: x, scale: s, to: int4}}
    inputs: {{unused: [0]}}
    expect: {{values: {nested(C, 2)}, tolerance: exact}}
    overrides:
      - backend: [onnxruntime, onnx-reference]
        reason: >-
{ONNX}
        expect: {{values: {nested(D, 2)}, tolerance: exact}}""")
open(Path(__file__).resolve().parent.parent / "cases/numerics/reciprocal-vs-division.yaml", "w").write(
    "\n".join(out) + "\n"
)

"""Expected values recomputed in exact rational arithmetic (tests/exact.py), from the case files' own text: no
harness loader, no numpy arithmetic, no backend. A wrong value in these files, or a harness that reads a number
differently from its exact meaning, fails here."""

from __future__ import annotations

from fractions import Fraction

import pytest
import yaml

import exact
from conftest import REPO

RECIPROCAL = REPO / "cases/numerics/reciprocal-vs-division.yaml"


def number(text) -> Fraction:
    """A case's literal as its exact value rounded once to float32 (a quotient such as "1/3" included)."""
    return exact.round_to(Fraction(str(text)), "float32")


def flatten(value) -> list:
    return [x for item in value for x in flatten(item)] if isinstance(value, list) else [value]


def scale_per_element(layer_scale: dict, quantize: dict, shape: list[int]) -> list[Fraction]:
    """The scale coefficient of each element of an input of `shape` (row-major), for per-tensor, per-channel
    (axis) and block scales (the scale has the input's rank; each scale index covers a block)."""
    scales = [number(v) for v in flatten(layer_scale["value"])]
    scale_shape = layer_scale["shape"]
    out = []
    for flat_index in range(_volume(shape)):
        index = _unravel(flat_index, shape)
        if not scale_shape:
            out.append(scales[0])
        elif len(scale_shape) == 1:
            out.append(scales[index[quantize["axis"]]])
        else:
            block_index = [i * s // n for i, s, n in zip(index, scale_shape, shape)]
            out.append(scales[_ravel(block_index, scale_shape)])
    return out


def _volume(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _unravel(i, shape):
    index = []
    for d in reversed(shape):
        index.append(i % d)
        i //= d
    return index[::-1]


def _ravel(index, shape):
    i = 0
    for x, d in zip(index, shape):
        i = i * d + x
    return i


def _cases(path):
    return yaml.safe_load(path.read_text())["cases"]


@pytest.mark.parametrize("case", _cases(RECIPROCAL), ids=lambda c: c["name"])
def test_reciprocal_cases_hold_in_exact_arithmetic(case):
    layers = {layer["name"]: layer for layer in case["network"]}
    q = layers["q"]
    source = layers[q["input"]]
    shape = source["shape"]
    xs = [number(v) for v in flatten(source["value"] if source["op"] == "constant" else case["inputs"]["x"])]
    scales = scale_per_element(layers[q["scale"]], q, shape)
    to = q["to"]

    def codes(how):
        return [exact.quantize(x, s, to, how) for x, s in zip(xs, scales)]

    contract, divided, wide = codes("contract"), codes("divide"), codes("float64")
    assert [Fraction(str(v)) for v in flatten(case["expect"]["values"])] == contract
    (onnx,) = [o for o in case["overrides"] if set(o["backend"]) == {"onnxruntime", "onnx-reference"}]
    assert [Fraction(str(v)) for v in flatten(onnx["expect"]["values"])] == divided
    # The case is there to tell the three apart: some element must differ each way.
    assert contract != divided and contract != wide


def test_dequantize_zero_point_values_hold_in_exact_arithmetic():
    for case in _cases(REPO / "cases/rules/dequantize-zero-point.yaml"):
        layers = {layer["name"]: layer for layer in case["network"]}
        dq = layers["y"]
        shape = layers["x"]["shape"]
        codes = [Fraction(v) for v in flatten(case["inputs"]["x"])]
        scales = scale_per_element(layers["s"], dq, shape)
        zero_points = [Fraction(z) for z in scale_per_element(layers["zp"], dq, shape)]
        expected = [exact.dequantize(q - z, s, "float32") for q, z, s in zip(codes, zero_points, scales)]
        (onnx,) = case["overrides"]
        assert [Fraction(str(v)) for v in flatten(onnx["expect"]["values"])] == expected
        assert case["expect"] == {"error": {"category": "zero-point-nonzero"}}


def test_the_exact_oracle_itself():
    """Known values, by hand: the cookbook's x = 30 with s = 60/127, FP8 and FP4 grid points and ties."""
    s = number("60/127")
    assert exact.quantize(Fraction(30), s, "int8") == 63  # 30 * fl32(127/60) = 63.499996 in float32
    assert exact.quantize(Fraction(30), s, "int8", "divide") == 64  # fl32(30 / s) = 63.5, a tie, to even
    assert exact.to_quantized(Fraction(17), "fp8") == 16 and exact.to_quantized(Fraction(19), "fp8") == 20
    assert exact.to_quantized(Fraction(500), "fp8") == 448 and exact.to_quantized(Fraction(2) ** -10, "fp8") == 0
    assert exact.to_quantized(Fraction(5, 4), "fp4") == 1 and exact.to_quantized(Fraction(5, 2), "fp4") == 2
    assert exact.to_quantized(Fraction(-7), "int4") == -7 and exact.to_quantized(Fraction(-9), "int4") == -8
    assert exact.round_to(Fraction(1, 3), "float32") == Fraction(11184811, 33554432)


@pytest.mark.parametrize("name", ["fused-vs-simulated", "fused-bias"])
def test_fused_and_simulated_1x1_conv_values_hold_in_exact_arithmetic(name):
    """DQ -> 1x1 conv (one input channel, one weight code) -> [relu] -> Q, from the file's text: the contract's
    float simulation (expect) and the fused kernel's epilogue in the order NVIDIA's builder prints it (numpy-fused's
    override): float32(acc * float32(sx*sw)), + bias, relu, * float32(1/sy), round half to even."""
    case = yaml.safe_load((REPO / "cases/layers" / f"{name}.yaml").read_text())
    layers = {layer["name"]: layer for layer in case["network"]}

    def f32(v):
        return exact.round_to(Fraction(v), "float32")

    sx, sw, sy = (number(layers[k]["value"]) for k in ("sx", "sw", "sy"))
    (w,) = flatten(layers["wq"]["value"])
    bias = number(flatten(layers["b"]["value"])[0]) if "b" in layers else None
    relu = any(layer["op"] == "relu" for layer in case["network"])
    codes = [Fraction(v) for v in flatten(case["inputs"]["xq"])]
    reciprocal = f32(1 / sy)

    def simulated(xq):
        v = f32(f32(xq * sx) * f32(w * sw))  # DQ(x) * DQ(w): exact products rounded once each
        v = f32(v + bias) if bias is not None else v
        v = max(v, 0) if relu else v
        return exact.saturate_round_int(f32(v * reciprocal), "int8")

    def fused(xq):
        v = f32(xq * w * f32(sx * sw))  # the exact integer sum times the dequantize scale
        v = f32(v + bias) if bias is not None else v
        v = max(v, 0) if relu else v
        return exact.saturate_round_int(f32(v * reciprocal), "int8")

    assert flatten(case["expect"]["values"]) == [simulated(x) for x in codes]
    (numpy_fused,) = [o for o in case["overrides"] if o["backend"] == "numpy-fused"]
    assert flatten(numpy_fused["expect"]["values"]) == [fused(x) for x in codes]
    assert [simulated(x) for x in codes] != [fused(x) for x in codes]  # the case is there to tell them apart

"""The numpy reference against values stated independently of it: hand-computed codes, the documents, and a scalar
oracle written with exact fractions."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from harness.cases.errors import QdqError
from harness.engine.execute import execute
from plugins.numpy.backend import NumpyReference, dequantize, quantize

BACKEND = NumpyReference()


def q(x, to, scale=1.0, dtype=np.float32):
    x = np.asarray(x, dtype=dtype)
    return quantize(x, np.full(x.shape, scale, dtype=dtype), to)


# --- rounding and saturation ----------------------------------------------------------------------------------------


def test_int8_ties_round_to_even():
    assert q([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5], "int8").tolist() == [0, 2, 2, 4, 0, -2, -2]


@pytest.mark.parametrize(
    "to, low, high", [("int8", -128, 127), ("int4", -8, 7), ("fp8", -448.0, 448.0), ("fp4", -6.0, 6.0)]
)
def test_saturation_at_both_ends(to, low, high):
    got = q([-1e6, low * 1.5 if low else -1, high * 1.5, 1e6], to).astype(np.float64).tolist()
    assert got == [low, low, high, high]


def test_int4_values_and_type():
    out = q([7.4, 7.5, -8.5, -9, 3.49], "int4")
    assert out.dtype == np.dtype(ml_dtypes.int4)
    assert out.astype(int).tolist() == [7, 7, -8, -8, 3]


def test_fp8_rounds_to_nearest_even_after_clipping():
    # E4M3: 17 lies between 16 and 18 (tie -> 16, even mantissa); 19 between 18 and 20 (tie -> 20); 464 is the
    # midpoint of 448 and 480 (which E4M3FN does not have: it is NaN) -> clipped to 448 first.
    got = q([17, 19, 0.3, 464, 2**-10, 1.5 * 2**-10, 2**-9], "fp8").astype(np.float64).tolist()
    assert got == [16, 20, 0.3125, 448, 0, 2**-9, 2**-9]


def test_fp4_grid():
    got = q([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 5.5], "fp4").astype(np.float64).tolist()
    assert got == [0, 1, 1, 2, 2, 4, 4, 6]


def test_non_finite_policy():
    # Documented in plugins/numpy/backend.py: ±Inf saturate; NaN -> 0 for INT8/INT4/FP4, NaN stays NaN in FP8.
    x = [np.nan, np.inf, -np.inf]
    assert q(x, "int8").tolist() == [0, 127, -128]
    assert q(x, "int4").astype(int).tolist() == [0, 7, -8]
    assert q(x, "fp4").astype(np.float64).tolist() == [0, 6, -6]
    fp8 = q(x, "fp8").astype(np.float64)
    assert np.isnan(fp8[0]) and fp8[1:].tolist() == [448, -448]


def test_reciprocal_multiplication_gives_the_cookbook_value():
    s = np.float32(60 / 127)
    assert np.rint(np.float32(30) / s) == 64  # what division gives (ONNX)
    assert q([30], "int8", scale=s).tolist() == [63]  # what TensorRT's cookbook prints


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_low_precision_inputs(dtype):
    # 2.5 and 3.5 are exact in FP16 and BF16; scale 0.5 too: codes 5 and 7 exactly, -200 saturates.
    assert q([2.5, 3.5, -200], "int8", scale=0.5, dtype=dtype).tolist() == [5, 7, -128]


# Hand-rounded: FP16 spacing near 1/3 is 2^-12 and near 42.7 is 2^-5; BF16 spacing near 1/3 is 2^-9, near 42.7 is 2^-2.
@pytest.mark.parametrize(
    "to, expected", [(np.float16, [0.333251953125, -42.65625]), (ml_dtypes.bfloat16, [0.333984375, -42.75])]
)
def test_dequantize_rounds_once_to_low_precision_output(to, expected):
    name = "float16" if to is np.float16 else "bfloat16"
    out = dequantize(np.array([1, -128], np.int8), np.full(2, np.float32(1 / 3)), name)
    assert out.dtype == np.dtype(to)
    assert out.astype(np.float64).tolist() == expected


# --- granularity through whole cases -------------------------------------------------------------------------------


def _case(load_case, network, inputs, extra="", expect="reference"):
    import json

    return load_case(f"""
        title: t
        source: {{document: test}}
        network: {json.dumps(network)}
        outputs: [y]
        inputs: {json.dumps(inputs)}
        expect: {expect}
        {extra}
    """)[0]


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_per_channel_on_every_axis(load_case, axis):
    shape = [2, 3, 4, 5]
    n = shape[axis]
    scales = [2.0**-k for k in range(n)]  # powers of two: x / s exact, no rounding question
    x = np.arange(-60, 60, dtype=np.float32).reshape(shape) / 4
    case = _case(
        load_case,
        [
            {"op": "input", "name": "x", "dtype": "float32", "shape": shape},
            {"op": "constant", "name": "s", "dtype": "float32", "shape": [n], "value": scales},
            {"op": "quantize", "name": "y", "input": "x", "scale": "s", "axis": axis, "to": "int8"},
        ],
        {"x": x.tolist()},
    )
    out = execute(BACKEND, case).outputs["y"]
    view = [1] * 4
    view[axis] = n
    expected = np.clip(np.rint(x / np.array(scales).reshape(view)), -128, 127)
    assert np.array_equal(out.astype(np.float64), expected)


def test_block_scales_along_last_dimension(load_case):
    w = np.arange(16, dtype=np.float32).reshape(2, 8) - 8
    s = np.array([[1, 2], [4, 8]], np.float32)  # blocks of 4 columns
    case = _case(
        load_case,
        [
            {"op": "constant", "name": "w", "dtype": "float32", "shape": [2, 8], "value": w.tolist()},
            {"op": "constant", "name": "s", "dtype": "float32", "shape": [2, 2], "value": s.tolist()},
            {"op": "quantize", "name": "q", "input": "w", "scale": "s", "to": "int4"},
            {"op": "dequantize", "name": "y", "input": "q", "scale": "s", "to": "float32"},
        ],
        {},
    )
    out = execute(BACKEND, case).outputs["y"]
    # row 0: -8..-5 / 1 -> -8..-5 ; -4..-1 / 2 -> -2,-1.5->-2,-1,-0.5->0 -> *2 ; row 1: 0..3/4 ; 4..7/8
    expected = [[-8, -7, -6, -5, -4, -4, -2, 0], [0, 0, 0, 4, 0, 8, 8, 8]]
    assert out.tolist() == expected


RULES = [
    ("invalid-axis", {"shape": [3], "value": [1, 2, 3]}, {"axis": 5}),
    ("invalid-axis", {"shape": [3], "value": [1, 2, 3]}, {}),
    ("scale-shape-mismatch", {"shape": [4], "value": [1, 2, 3, 4]}, {"axis": 0}),
    ("scale-shape-mismatch", {"shape": [1, 1, 3], "value": {"fill": 1}}, {}),
    ("scale-not-positive", {"shape": [3], "value": [1, 0, 3]}, {"axis": 0}),
    ("scale-not-positive", {"shape": [], "value": -0.5}, {}),
    ("scale-not-positive", {"shape": [], "value": "nan"}, {}),
    ("block-shape-invalid", {"shape": [2, 4], "value": {"fill": 1}}, {"to": "int4"}),  # (3,4) rows not in 2 blocks
]


@pytest.mark.parametrize("category, scale, attrs", RULES)
def test_documented_rules_raise_their_category(load_case, category, scale, attrs):
    layer = {"op": "quantize", "name": "y", "input": "x", "scale": "s", "to": "int8", **attrs}
    case = _case(
        load_case,
        [
            {"op": "input", "name": "x", "dtype": "float32", "shape": [3, 4]},
            {"op": "constant", "name": "s", "dtype": "float32", **scale},
            layer,
        ],
        {"x": {"fill": 1}},
    )
    with pytest.raises(QdqError) as info:
        BACKEND.load(case)
    assert info.value.category == category


def _two_layer(
    load_case, zp_shape, zp_value, scale_from_input=False, in_dtype="float32", scale_dtype="float32", rank0=False
):
    net = [{"op": "input", "name": "x", "dtype": in_dtype, "shape": [] if rank0 else [3, 4]}]
    net.append(
        {"op": "input", "name": "s", "dtype": scale_dtype, "shape": []}
        if scale_from_input
        else {"op": "constant", "name": "s", "dtype": scale_dtype, "shape": [3], "value": [1, 2, 4]}
    )
    layer = {"op": "quantize", "name": "y", "input": "x", "scale": "s", "axis": 0, "to": "int8"}
    if zp_shape is not None:
        net += [
            {"op": "constant", "name": "z32", "dtype": "int32", "shape": zp_shape, "value": zp_value},
            {"op": "cast", "name": "z", "input": "z32", "to": "int8"},
        ]
        layer["zero_point"] = "z"
    inputs = {"x": 1 if rank0 else {"fill": 1}}
    if scale_from_input:
        inputs["s"] = 1
    return _case(load_case, net + [layer], inputs)


@pytest.mark.parametrize(
    "kwargs, category",
    [
        ({"zp_shape": [3], "zp_value": [0, 1, 0]}, "zero-point-nonzero"),
        ({"zp_shape": [1], "zp_value": [0]}, "zero-point-shape-mismatch"),
        ({"zp_shape": None, "zp_value": None, "scale_from_input": True}, "scale-not-constant"),
        ({"zp_shape": None, "zp_value": None, "in_dtype": "float16"}, "unsupported-type"),
        ({"zp_shape": None, "zp_value": None, "in_dtype": "int32", "scale_dtype": "int32"}, "unsupported-type"),
    ],
)
def test_zero_point_constness_and_type_rules(load_case, kwargs, category):
    with pytest.raises(QdqError) as info:
        BACKEND.load(_two_layer(load_case, **kwargs))
    assert info.value.category == category


def test_zero_point_of_zeros_is_accepted(load_case):
    case = _two_layer(load_case, [3], [0, 0, 0])
    assert execute(BACKEND, case).outputs["y"].tolist() == [[1] * 4, [0] * 4, [0] * 4]  # 1/1, 1/2 -> 0 (tie), 1/4


def test_volume_limit_is_checked_before_allocating(load_case):
    case = _case(
        load_case,
        [
            {"op": "input", "name": "x", "dtype": "float32", "shape": [65536, 32768]},
            {"op": "constant", "name": "s", "dtype": "float32", "shape": [], "value": 1},
            {"op": "quantize", "name": "y", "input": "x", "scale": "s", "to": "int8"},
        ],
        {"x": {"fill": 0}},
        expect="{error: {category: volume-limit}}",
    )
    with pytest.raises(QdqError) as info:
        BACKEND.load(case)  # 2^31 float32 would be 8 GiB: it must fail without touching memory
    assert info.value.category == "volume-limit"


# --- property test against an exact scalar oracle -------------------------------------------------------------------


def _round_to_float32(v: Fraction) -> Fraction:
    """v rounded to the nearest float32 (ties to even), in exact arithmetic; written here, independent of the code."""
    if v == 0:
        return Fraction(0)
    sign = -1 if v < 0 else 1
    a = abs(v)
    e = math.floor(math.log2(a.numerator) - math.log2(a.denominator))
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    ulp = Fraction(2) ** (max(e, -126) - 23)
    m = a / ulp
    floor = m.numerator // m.denominator
    rest = m - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return sign * floor * ulp


def _oracle_int8(x: float, s: float) -> int:
    """TensorRT's documented INT8 quantize: reciprocal in float32, product in float32, round half even, clamp."""
    r = _round_to_float32(1 / Fraction(s))
    v = _round_to_float32(Fraction(x) * r)
    n = v.numerator // v.denominator
    rest = v - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    return max(-128, min(127, n))


def test_against_exact_oracle_with_near_ties():
    rng = np.random.default_rng(2026)
    scales = rng.uniform(1 / 512, 4, size=300).astype(np.float32)
    ks = rng.integers(-140, 140, size=300)
    xs = []
    for s, k in zip(scales, ks):
        tie = np.float32((k + 0.5) * float(s))  # near a rounding tie of x / s
        xs += [
            tie,
            np.nextafter(tie, np.float32(np.inf)),
            np.nextafter(tie, np.float32(-np.inf)),
            np.float32(rng.normal(0, 100)),
        ]
    xs = np.array(xs, np.float32)
    ss = np.repeat(scales, 4)
    got = quantize(xs, ss, "int8").astype(int)
    expected = np.array([_oracle_int8(float(x), float(s)) for x, s in zip(xs, ss)])
    assert np.array_equal(got, expected)
    # The draws really exercise near-ties: exact division would round a good share of them differently.
    by_division = np.clip(np.rint(xs.astype(np.float64) / ss.astype(np.float64)), -128, 127).astype(int)
    assert (by_division != expected).sum() > 10


def test_oracle_reproduces_the_cookbook_split():
    assert _oracle_int8(30.0, float(np.float32(60 / 127))) == 63

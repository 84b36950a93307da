"""TensorRT's documented Q/DQ arithmetic in exact rational arithmetic (fractions.Fraction), with IEEE rounding written
out: an oracle that shares no code and no floating-point path with the numpy reference or any backend.

Quantize: q = saturate(round_half_even(fl32(x * fl32(1 / s)))); Dequantize: y = fl_out(fl32(q * s)).
Also the two ways to get it wrong that tests/mutations.py plants: x / s (one rounding) and float64 throughout.
"""

from __future__ import annotations

from fractions import Fraction

FORMATS = {  # significand bits (with the implicit one), smallest normal exponent, largest finite value
    "float32": (24, -126, None),
    "float64": (53, -1022, None),
    "float16": (11, -14, Fraction(65504)),
    "bfloat16": (8, -126, None),
    "fp8": (4, -6, Fraction(448)),  # E4M3FN
    "fp4": (2, 0, Fraction(6)),  # E2M1
}
INT_RANGES = {"int8": (-128, 127), "int4": (-8, 7)}


def round_to(value: Fraction, fmt: str) -> Fraction:
    """The nearest value of `fmt`, ties to the even significand (no overflow handling: callers saturate first)."""
    bits, min_exp, _ = FORMATS[fmt]
    if value == 0:
        return Fraction(0)
    magnitude = abs(value)
    exp = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exp > magnitude:  # exp = floor(log2 |value|)
        exp -= 1
    ulp = Fraction(2) ** (max(exp, min_exp) - (bits - 1))
    return round(value / ulp) * ulp  # Fraction.__round__ rounds half to even


def saturate_round_int(value: Fraction, to: str) -> int:
    low, high = INT_RANGES[to]
    return int(min(max(round(value), low), high))


def to_quantized(value: Fraction, to: str) -> Fraction:
    """The contract's last step: saturate, then round to the quantized type (integer or FP8/FP4)."""
    if to in INT_RANGES:
        return Fraction(saturate_round_int(value, to))
    top = FORMATS[to][2]
    return round_to(min(max(value, -top), top), to)


def quantize(x: Fraction, s: Fraction, to: str, how: str = "contract") -> Fraction:
    """`how`: "contract" (x * fl32(1/s), rounded to float32), "divide" (fl32(x / s)), "float64" (all in float64)."""
    if how == "contract":
        product = round_to(x * round_to(1 / s, "float32"), "float32")
    elif how == "divide":
        product = round_to(x / s, "float32")
    else:
        product = round_to(x * round_to(1 / s, "float64"), "float64")
    return to_quantized(product, to)


def dequantize(q: Fraction, s: Fraction, to: str, how: str = "contract") -> Fraction:
    """`how`: "contract" (q * s in float32, then rounded to the output type) or "float64" (one rounding)."""
    exact = q * s
    return round_to(exact if how == "float64" else round_to(exact, "float32"), to)

"""Exact numbers in case files: a tiny arithmetic parser, never `eval`.

Case data may spell a number as text: "60/127", "1e-3", "-inf", "nan", "2**-9", "(1+2)/3". YAML 1.1 reads
`1e-3` and `nan` as strings, so every numeric leaf goes through `parse_number`. Results are exact
(`fractions.Fraction`) so that "60/127" becomes the float32 nearest to 60/127, not a float64 rounded twice.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

import numpy as np

from harness.cases.limits import MAX_DECIMAL_EXPONENT, MAX_EXPONENT, MAX_NUMBER_BITS, MAX_NUMBER_CHARS

Number = Fraction | float  # float only for nan and ±inf

_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<word>[A-Za-z]+)|(?P<op>\*\*|[-+*/()]))")
_WORDS = {"nan": math.nan, "inf": math.inf, "infinity": math.inf}


class NumberError(ValueError):
    pass


def parse_number(value: object) -> Number:
    """A YAML scalar (int, float or arithmetic text) as an exact Fraction, or a float for nan/inf."""
    try:
        return _parse_cached(type(value), value)
    except TypeError:  # unhashable: a list or mapping where a number belongs
        return _parse(value)


@lru_cache(maxsize=1 << 16)
def _parse_cached(kind: type, value: object) -> Number:
    """Cases repeat their numbers (a matrix, the same inputs in many files): each text is parsed once. The type is
    part of the key so that True and 1 stay apart. Fractions are immutable, so sharing them is safe."""
    return _parse(value)


def _parse(value: object) -> Number:
    if isinstance(value, bool):
        raise NumberError(f"{value!r} is a boolean, not a number")
    if isinstance(value, int):
        return _bounded(Fraction(value), repr(value))
    if isinstance(value, float):
        return Fraction(value) if math.isfinite(value) else value
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise NumberError(f"a number of {len(value)} characters, over the limit of {MAX_NUMBER_CHARS}")
        return _Parser(value).parse()
    raise NumberError(f"{value!r} is not a number")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if not m or m.end() == pos:
                raise NumberError(f"cannot read {text!r} as a number (at {text[pos:]!r})")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def parse(self) -> Number:
        if not self.tokens:
            raise NumberError("empty number")
        value = self._expr()
        if self.i != len(self.tokens):
            raise NumberError(f"cannot read {self.text!r} as a number (unexpected {self.tokens[self.i][1]!r})")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise NumberError(f"{self.text!r} ends too early")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _expr(self) -> Number:
        value = self._term()
        while self._peek() in ("+", "-"):
            op = self._take()[1]
            rhs = self._term()
            value = _bounded(_apply(op, value, rhs), self.text)
        return value

    def _term(self) -> Number:
        value = self._factor()
        while self._peek() in ("*", "/"):
            op = self._take()[1]
            rhs = self._factor()
            value = _bounded(_apply(op, value, rhs), self.text)
        return value

    def _factor(self) -> Number:
        if self._peek() in ("+", "-"):
            sign = self._take()[1]
            value = self._factor()
            return -value if sign == "-" else value
        base = self._atom()
        if self._peek() == "**":
            self._take()
            exponent = self._factor()
            if not (isinstance(exponent, Fraction) and exponent.denominator == 1) or abs(exponent) > MAX_EXPONENT:
                raise NumberError(f"{self.text!r}: exponents must be integers up to {MAX_EXPONENT}")
            if isinstance(base, Fraction) and base != 0:
                bits = max(base.numerator.bit_length(), base.denominator.bit_length()) - 1
                if bits * abs(exponent) > MAX_NUMBER_BITS:  # decided before computing it
                    raise NumberError(f"{self.text!r} is out of range: {_RANGE}")
            return _bounded(_apply("**", base, exponent), self.text)
        return base

    def _atom(self) -> Number:
        kind, text = self._take()
        if kind == "num":
            mantissa, _, exponent = text.lower().partition("e")
            if exponent and abs(int(exponent)) > MAX_DECIMAL_EXPONENT:
                raise NumberError(f"{self.text!r}: decimal exponents must be within ±{MAX_DECIMAL_EXPONENT}")
            return _bounded(Fraction(text), self.text)
        if kind == "word" and text.lower() in _WORDS:
            return _WORDS[text.lower()]
        if text == "(":
            value = self._expr()
            if self._take()[1] != ")":
                raise NumberError(f"{self.text!r}: missing ')'")
            return value
        raise NumberError(f"cannot read {self.text!r} as a number (unexpected {text!r})")


_RANGE = (
    f"exact numbers must lie within float64's range (below 2^1024) and need at most {MAX_NUMBER_BITS} bits; "
    "write inf for infinity"
)


_FLOAT64_LIMIT = Fraction(2) ** 1024


def _bounded(value: Number, text: str) -> Number:
    if isinstance(value, Fraction) and (
        max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_NUMBER_BITS
        or abs(value) >= _FLOAT64_LIMIT
    ):
        raise NumberError(f"{text!r} is out of range: {_RANGE}")
    return value


def _apply(op: str, a: Number, b: Number) -> Number:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        if op == "/" and b == 0:
            raise NumberError("division by zero")
        if op == "**" and a == 0 and b < 0:
            raise NumberError("division by zero")
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return a / b if op == "/" else a**b
    a, b = float(a), float(b)
    with np.errstate(all="ignore"):
        return float({"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power}[op](a, b))


def nearest(value: Number, np_type: np.dtype) -> np.generic:
    """`value` rounded once, to nearest with ties to even, into a numpy float type."""
    np_type = np.dtype(np_type)
    try:
        return _nearest_cached(value, np_type.str)
    except TypeError:
        return _nearest(value, np_type)


@lru_cache(maxsize=1 << 16)
def _nearest_cached(value: Number, type_code: str) -> np.generic:
    """The same literals recur across cases (inputs, scales): each is rounded once per type."""
    return _nearest(value, np.dtype(type_code))


def _nearest(value: Number, np_type: np.dtype) -> np.generic:
    if not isinstance(value, Fraction):
        return np_type.type(value)
    with np.errstate(over="ignore"):
        candidate = np_type.type(float(value))
    if np_type not in (np.dtype(np.float32), np.dtype(np.float16)) or not np.isfinite(candidate):
        return candidate
    if Fraction(float(candidate)) == value:
        return candidate
    # float(value) is correctly rounded to float64; rounding that again can be off by one ulp at a midpoint.
    best = candidate
    for other in (np.nextafter(candidate, np_type.type(np.inf)), np.nextafter(candidate, np_type.type(-np.inf))):
        if not np.isfinite(other):
            continue
        d_best, d_other = abs(Fraction(float(best)) - value), abs(Fraction(float(other)) - value)
        bits = np.dtype(f"u{np_type.itemsize}")
        if d_other < d_best or (d_other == d_best and int(other.view(bits)) % 2 == 0):
            best = other
    return best

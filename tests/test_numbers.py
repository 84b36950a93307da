from fractions import Fraction

import numpy as np
import pytest

from harness.cases.numbers import NumberError, nearest, parse_number


@pytest.mark.parametrize(
    "text, value",
    [
        ("60/127", Fraction(60, 127)),
        ("1e-3", Fraction(1, 1000)),
        ("-3.6", Fraction(-18, 5)),
        ("2**-9", Fraction(1, 512)),
        ("(1+2)/3", Fraction(1)),
        ("1.5*2**-10", Fraction(3, 2048)),
        ("-2**2", Fraction(-4)),
        (".5", Fraction(1, 2)),
        (7, Fraction(7)),
        (0.1, Fraction(0.1)),
    ],
)
def test_parses_exact_values(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text, check",
    [
        ("nan", np.isnan),
        ("inf", lambda v: v == np.inf),
        ("-inf", lambda v: v == -np.inf),
        ("NaN", np.isnan),
        ("inf*0", np.isnan),
    ],
)
def test_non_finite_words(text, check):
    assert check(parse_number(text))


@pytest.mark.parametrize("text", ["__import__('os')", "1/0", "2**0.5", "1 2", "abc", "", "(1", "True", "1e5000**5000"])
def test_rejects_anything_but_arithmetic(text):
    with pytest.raises(NumberError):
        parse_number(text)


def test_bool_is_not_a_number():
    with pytest.raises(NumberError):
        parse_number(True)


def test_nearest_rounds_once_to_float32():
    # 60/127 lies between two float32 neighbours; the nearer one is 1981561 * 2^-22 (shared notes, section 6.4).
    assert nearest(Fraction(60, 127), np.float32) == np.float32(1981561 / 2**22)
    # A value just above a float32 midpoint whose float64 rounding lands exactly on the midpoint: rounding via float64
    # then float32 would go to even (down); rounding once goes up.
    lo = Fraction(1)
    ulp = Fraction(1, 2**23)
    tricky = lo + ulp / 2 + Fraction(1, 2**80)
    assert float(np.float32(float(tricky))) == 1.0  # the double rounding a naive conversion does
    assert nearest(tricky, np.float32) == np.float32(1 + 2**-23)

"""cases/coverage is what tests/coverage_cases.py writes, and that generator's exact arithmetic holds where it can be
checked by hand (so a wrong golden cannot hide behind a matching reference)."""

from fractions import Fraction as F

import coverage_cases as gen
from conftest import REPO


def test_committed_files_are_what_the_generator_writes():
    for name, text in gen.texts().items():
        assert (REPO / "cases" / "coverage" / name).read_text() == text, (
            f"re-run python tests/coverage_cases.py ({name})"
        )


def test_quantize_rounds_and_saturates_as_documented():
    q = gen.quantize
    assert [q(F(v), "int8") for v in (F(5, 2), F(-5, 2), F(3, 2), F(-1, 2), F(200), F(-300))] == [
        2,
        -2,
        2,
        0,
        127,
        -128,
    ]
    assert [q(F(v), "int4") for v in (F(15, 2), F(-17, 2), F(13, 2), F(1, 2))] == [7, -8, 6, 0]
    # FP8 E4M3: 17 lies between 16 and 18 (a tie): even mantissa -> 16; 464 clips to 448; 1/1024 is below half
    # the smallest subnormal (1/512) -> 0; 3/1024 rounds to 1/512 (ties to even: 2/1024 has mantissa 1, 4/1024 = 2/512
    # mantissa 2: the tie goes to 4/1024).
    assert q(F(17), "fp8") == 16 and q(F(464), "fp8") == 448 and q(F(1, 1024), "fp8") == 0
    assert q(F(3, 1024), "fp8") == F(4, 1024)
    # FP4 E2M1 values 0, .5, 1, 1.5, 2, 3, 4, 6: 5 ties to 4, 2.5 ties to 2, 7/4 ties to 2, 13 clips to 6.
    assert [q(F(v), "fp4") for v in (F(5), F(5, 2), F(7, 4), F(13), F(-5, 4))] == [4, 2, 2, 6, -1]


def test_representable_knows_each_types_precision_and_range():
    r = gen.representable
    assert r(F(129), "bfloat16") and not r(F(257, 2), "bfloat16") and r(F(257, 2), "float16")
    assert not r(F(65536), "float16") and r(F(65504), "float16")
    assert r(F(1, 2**24), "float16") and not r(F(1, 2**25), "float16")

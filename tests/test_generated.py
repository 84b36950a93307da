"""Generated cross-checks: hypothesis draws shapes, axes, scales, types and data (exact ties and near-ties on
purpose) and compares the numpy reference with the ONNX backends, modulo the one declared difference (ONNX divides,
TensorRT multiplies by the reciprocal: one code apart where the two roundings differ). A disagreement is shrunk and
written as a case under `cases/found/`, which stays. A planted backend that rounds half away from zero must be
found. Fixed seed (derandomized) here; `pytest --deep` draws many more.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from conftest import REPO, run_qdq
from harness.cases import found
from harness.engine.backend import instance
from harness.cases.load import load_file
from harness.engine.execute import execute, make_inputs
from plugins.numpy.backend import NumpyReference

FRACTIONS = [0.0, 0.5, -0.5, 0.25, 0.75, 0.5 + 2**-20, 0.5 - 2**-20, 0.49, 0.51]


@st.composite
def quantize_cases(draw):
    rank = draw(st.integers(1, 3))
    shape = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    to = draw(st.sampled_from(["int8", "int4"]))
    axis = draw(st.one_of(st.none(), st.integers(0, rank - 1)))
    count = shape[axis] if axis is not None else 1
    if draw(st.booleans()):  # powers of two: exact reciprocals, so exact ties stay exact ties
        scales = [2.0 ** draw(st.integers(-8, 3)) for _ in range(count)]
    else:
        scales = [float(np.float32(draw(st.floats(2**-8, 8, width=32)))) for _ in range(count)]
    n = math.prod(shape)
    per_element = np.broadcast_to(
        np.asarray(scales, np.float64).reshape(
            [shape[axis] if i == axis else 1 for i in range(rank)] if axis is not None else [1] * rank
        ),
        shape,
    ).reshape(-1)
    codes = draw(st.lists(st.integers(-12, 12), min_size=n, max_size=n))
    fracs = draw(st.lists(st.sampled_from(FRACTIONS), min_size=n, max_size=n))
    x = [float(np.float32((k + f) * s)) for k, f, s in zip(codes, fracs, per_element)]
    return shape, np.asarray(x).reshape(shape).tolist(), scales, axis, to


def _case(tmp, drawn):
    shape, x, scales, axis, to = drawn
    body = found.case_body(shape, x, scales, axis, to, "drawn")
    (case,) = load_file(found.write(tmp, body), tmp)
    return case, body


def _declared(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Where ONNX's division and TensorRT's reciprocal product round x / s to different codes."""
    x32, s32 = x.astype(np.float32), s.astype(np.float32)
    with np.errstate(all="ignore"):
        return np.rint(x32 / s32) != np.rint(x32 * (np.float32(1) / s32))


def disagreement(case, a_backend, b_backend) -> str | None:
    """Why two backends' codes differ beyond the declared difference, or None."""
    a, b = execute(a_backend, case), execute(b_backend, case)
    if a.outputs is None or b.outputs is None:
        return None if (a.outputs is None) == (b.outputs is None) else f"one refused: {a.error or b.error}"
    qa, qb = (np.asarray(o.outputs["q"]).astype(np.int64) for o in (a, b))
    x = make_inputs(case)["x"].astype(np.float64)
    layer = case.layers["q"]
    scale = np.asarray(case.layers["s"].value, np.float64)
    s = np.broadcast_to(
        scale.reshape([x.shape[layer.axis] if i == layer.axis else 1 for i in range(x.ndim)])
        if layer.axis is not None
        else scale,
        x.shape,
    )
    differ = qa != qb
    allowed = (np.abs(qa - qb) == 1) & _declared(x, s)
    bad = differ & ~allowed
    if not bad.any():
        return None
    i = tuple(np.argwhere(bad)[0])
    return f"at {i}: x={x[i]!r}, s={s[i]!r}: {qa[i]} vs {qb[i]}"


class RoundsHalfAway(NumpyReference):
    """A plant: TensorRT's contract, except ties round half away from zero (np.round is half to even)."""

    name = "planted-half-away"

    def load(self, case):
        runner = super().load(case)
        original = runner.infer

        def infer(feeds):
            out = original(feeds)
            x = feeds["x"].astype(np.float32)
            s = runner.built.steps[2][1][1]  # the reciprocal the reference prepared for the quantize
            v = np.clip(
                x * s, -128 if case.layers["q"].to == "int8" else -8, 127 if case.layers["q"].to == "int8" else 7
            )
            out["q"] = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(out["q"].dtype)
            return out

        runner.infer = infer
        return runner


def _settings(request, examples: int) -> settings:
    deep = request.config.getoption("--deep")
    return settings(
        max_examples=examples * (20 if deep else 1),
        derandomize=not deep,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )


def test_a_planted_rounding_bug_is_found_and_written_as_a_case(tmp_path, request):
    reference, plant = NumpyReference(), RoundsHalfAway()
    drawn = find(
        quantize_cases(),
        lambda d: disagreement(_case(tmp_path / "draws", d)[0], reference, plant) is not None,
        settings=_settings(request, 300),
    )
    case, body = _case(tmp_path / "draws", drawn)
    path = found.write(tmp_path / "cases" / "found", body)
    (again,) = load_file(path, tmp_path / "cases")
    why = disagreement(again, reference, plant)
    assert why is not None, "the written case must reproduce the finding"
    assert run_qdq("validate", str(path)).returncode == 0  # an ordinary case file
    x = make_inputs(again)["x"]
    # Shrunk to a tie: some element sits exactly half-way, where half-to-even and half-away-from-zero differ.
    assert "x=" in why and again.layers["q"].to in ("int8", "int4") and x.size <= 4


@pytest.mark.parametrize("other", ["onnx-reference", "onnxruntime"])
def test_the_reference_and_onnx_agree_modulo_the_declared_difference(tmp_path, request, other):
    backend = instance(other)
    if not backend.availability().available:
        pytest.skip(f"{other} unavailable: {backend.availability().reason}")
    reference = NumpyReference()
    try:
        drawn = find(
            quantize_cases(),
            lambda d: disagreement(_case(tmp_path / "draws", d)[0], reference, backend) is not None,
            settings=_settings(request, 60),
        )
    except NoSuchExample:
        return  # no disagreement in this many draws
    _, body = _case(tmp_path / "draws", drawn)
    path = found.write(REPO / "cases" / "found", body)  # stays: it runs with every case until it is declared
    pytest.fail(f"numpy reference and {other} disagree beyond the declared difference; written as {path}")

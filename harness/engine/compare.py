"""Element-wise comparison of two arrays with the metrics a person needs to judge a difference.

Used for case expectations and for the cross-backend diff. Values are compared in float64; NaN equals NaN and an
infinity equals the same infinity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.cases.case import Tolerance

FIRST_DIFFERENCES = 8


@dataclass
class Comparison:
    ok: bool
    total: int
    mismatched: int
    max_abs: float
    max_rel: float
    max_steps: float | None  # the largest difference in quantization steps, when steps are known
    first: list[dict] = field(default_factory=list)  # first differing elements: index, got, expected, steps
    shape_mismatch: str | None = None

    def summary(self) -> str:
        if self.shape_mismatch:
            return self.shape_mismatch
        text = (
            f"{self.mismatched}/{self.total} elements differ, max |diff| {self.max_abs:.6g}, max rel {self.max_rel:.3g}"
        )
        if self.max_steps is not None:
            text += f", max {self.max_steps:g} step(s)"
        if self.first:
            f = self.first[0]
            text += f"; first at {tuple(f['index'])}: got {f['got']!r}, expected {f['expected']!r}"
        return text

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def _wide(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def compare(got: np.ndarray, expected: np.ndarray, tolerance: Tolerance, step: np.ndarray | None = None) -> Comparison:
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return Comparison(
            False,
            int(expected.size),
            int(expected.size),
            float("inf"),
            float("inf"),
            None,
            shape_mismatch=f"shape {list(got.shape)} differs from the expected {list(expected.shape)}",
        )
    g, e = _wide(got), _wide(expected)
    both_nan = np.isnan(g) & np.isnan(e)
    same = (g == e) | both_nan
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(g - e))
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number, or inf - inf of opposite signs
        rel = np.where(same, 0.0, diff / np.maximum(np.abs(e), np.finfo(np.float64).tiny))
        steps = None if step is None else np.where(same, 0.0, diff / np.where(step > 0, step, np.inf))
    if tolerance.kind == "exact":
        within = same
    elif tolerance.kind == "steps":
        if steps is None:
            raise ValueError(
                "a tolerance in quantization steps needs the output's step (a dequantize with a constant scale)"
            )
        within = same | (steps <= tolerance.steps + 1e-9)
    else:
        with np.errstate(invalid="ignore"):
            within = same | (diff <= tolerance.atol + tolerance.rtol * np.abs(e))
    bad = ~within
    order = np.argwhere(bad)[:FIRST_DIFFERENCES]
    first = [
        {
            "index": [int(i) for i in idx],
            "got": _scalar(g[tuple(idx)]),
            "expected": _scalar(e[tuple(idx)]),
            "abs": _scalar(diff[tuple(idx)]),
            "steps": None if steps is None else _scalar(steps[tuple(idx)]),
        }
        for idx in order
    ]
    return Comparison(
        ok=not bad.any(),
        total=int(g.size),
        mismatched=int(bad.sum()),
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        max_steps=(float(steps.max()) if steps.size else 0.0) if steps is not None else None,
        first=first,
    )


def _scalar(x) -> float:
    return float(x)

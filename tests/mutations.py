"""Plausible implementation bugs planted in the numpy reference, and the case library run on each.

A case library is as strong as the bugs it catches. Each mutation below is a mistake an implementer of TensorRT's
documented Q/DQ contract could make (or a real backend does make); `caught()` runs every case of `cases/` on the
mutated reference in this process and returns the cases whose verdict turned to fail or error. Each mutation is a
small rewrite of one function of `plugins/numpy/backend.py`, patched in for the duration of a `with` block.

Not here, because no case can catch it: float64 arithmetic in Dequantize. A code has at most 8 significant bits and
a float32 scale 24, so q * s is exact in float64 and the float32 output is one rounding of the exact product either
way; an FP16 or BF16 output with a scale of its own type (as ONNX requires) makes q * s exact in float32 as well.
Only a float32 scale with an FP16/BF16 output could tell them apart, and no document says which TensorRT does
there. The mutation is the same function as the contract (an equivalent mutant).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from harness.cases import dtypes
from harness.cases.load import iter_case_files, load_file
from harness.cases.network import Granularity, NetworkInfo
from harness.engine.execute import execute
from harness.engine.verdict import judge
from plugins.numpy import backend as reference


def _quantize(
    x, scale, to, reciprocal=None, *, divide=False, wide=False, away=False, int4_low=None, fp8_clip=True
) -> np.ndarray:
    """The reference's quantize with one thing done wrong (keyword arguments name which)."""
    t = dtypes.dtype(to)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if wide:  # float64 throughout: the reciprocal and the product are not rounded to float32
            v = x.astype(np.float64) * (1.0 / scale.astype(np.float64))
        elif divide:  # x / s: one rounding where the contract has two (1/s, then the product)
            v = np.divide(x.astype(np.float32), scale.astype(np.float32), dtype=np.float32)
        else:
            if reciprocal is None:
                reciprocal = np.float32(1) / scale.astype(np.float32)
            v = np.multiply(x.astype(np.float32), reciprocal, dtype=np.float32)
    low = int4_low if (int4_low is not None and t.name == "int4") else t.qmin
    if fp8_clip or t.name != "fp8":
        v = np.clip(v, low, t.qmax)
    if t.kind == "int":
        v = np.where(np.isnan(v), 0, v)
        rounded = np.copysign(np.floor(np.abs(v) + 0.5), v) if away else np.rint(v)
        return rounded.astype(t.np_type)
    if t.name == "fp4":
        v = np.where(np.isnan(v), 0, v)
    return v.astype(t.np_type)  # float64 (wide) is cast once, as a float64 implementation would


@contextlib.contextmanager
def _patched(obj, name: str, value) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _quantize_with(**wrong) -> Callable[[], contextlib.AbstractContextManager]:
    return lambda: _patched(reference, "quantize", lambda x, s, to, r=None: _quantize(x, s, to, r, **wrong))


def _axis_zero():
    original = NetworkInfo.scale_granularity

    def first_axis(self, layer):
        g = original(self, layer)
        return dataclasses.replace(g, axis=0) if g.kind in ("per-channel", "block") else g

    return _patched(NetworkInfo, "scale_granularity", first_axis)


def _tiled_blocks():
    original = Granularity.compact

    def tiled(self, scale, shape):
        if self.kind != "block":
            return original(self, scale, shape)
        reps = [1] * scale.ndim
        reps[self.axis] = self.block
        return np.tile(scale, reps)  # [a, b] -> [a, b, a, b] where the contract repeats: [a, a, b, b]

    return _patched(Granularity, "compact", tiled)


def _dequantize_ignores_zero_point():
    """A dequantize that takes any zero point and leaves it out of (q - zp) * s, where the contract refuses a
    non-zero one (the reference then computes q * s)."""
    original = reference._Built._check_qdq

    def check(self, layer):
        if layer.op == "dequantize" and layer.zero_point is not None:
            layer = dataclasses.replace(layer, zero_point=None)
        return original(self, layer)

    return _patched(reference._Built, "_check_qdq", check)


MUTATIONS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "round half away from zero": _quantize_with(away=True),
    "divide x / s instead of multiplying by float32(1/s)": _quantize_with(divide=True),
    "INT4 saturates at [-7, 7]": _quantize_with(int4_low=-7),
    "ignore axis, use axis 0": _axis_zero,
    "FP8 overflows instead of saturating": _quantize_with(fp8_clip=False),
    "dequantize ignores (accepts) a non-zero zero point": _dequantize_ignores_zero_point,
    "float64 arithmetic instead of float32": _quantize_with(wide=True),
    "block scale tiled instead of repeated": _tiled_blocks,
}


def load_library(root: Path) -> list:
    return [case for path in iter_case_files([root]) for case in load_file(path, root)]


def statuses(cases: list) -> dict[str, str]:
    """Each case's verdict status on the (possibly mutated) numpy reference, as a run judges it."""
    backend = reference.NumpyReference()
    version = backend.availability().version
    out = {}
    for case in cases:
        if case.unmet_requirement("numpy", version) or backend.skip_reason(case):
            continue
        outcome = execute(backend, case)
        out[case.id] = judge(
            case, "numpy", version, outcome, reference=lambda o=outcome: o, reference_name="numpy"
        ).status
    return out


def caught(cases: list, baseline: dict[str, str], mutation: Callable[[], contextlib.AbstractContextManager]) -> list:
    """The cases a mutation turns from their baseline verdict to fail or error."""
    with mutation():
        mutated = statuses(cases)
    return sorted(c for c, s in mutated.items() if s in ("fail", "error") and baseline.get(c) not in ("fail", "error"))

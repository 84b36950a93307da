"""Where two backends part on a whole model: the intermediate tensors their runners report ("probes", listed in
`details["probes"]` in the order the model computes them: {tensor, node, op, step, input}), compared one by one.

Each Quantize or Dequantize output is judged against what the node read (`input`: another probe, or a constant of
the model, the same on both sides), element by element:
- *propagated*: the node read different values on the two backends (float operators upstream, summed in another
  order, moved a value): not this node's doing, never judged here;
- *rounding*: it read equal values and its outputs differ by one code, the rounding of a value on a code boundary
  (ONNX's x / s against TensorRT's documented x * (1/s) differ exactly there; with a per-tensor scale, the two codes
  must be exactly those two roundings, else the node parts): shown, never a failure by itself;
- *parts*: it read equal values and its outputs differ by more than one step (codes for a quantized tensor, ranked
  among the type's values for FP8/FP4; the largest |scale| for a dequantized one): the node's own arithmetic
  differs. The first such node is where the backends part, a failure unless the case declares it.
The first tensor that differs at all is named too ("first differs"): where a real model's difference starts.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

JUDGED = ("quantize", "dequantize")
SLACK = 1.001  # one step, give or take the float32 rounding of a dequantized value (|q| * 2^-24 of a step)


@lru_cache(maxsize=None)
def _ranks(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """For a one-byte type of ml_dtypes: every byte's value, and the sorted distinct finite values."""
    values = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float64)
    return values, np.unique(values[np.isfinite(values)])


def code_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element, how many codes of the tensors' type lie between a and b (floats: their absolute difference)."""
    a, b = np.asarray(a), np.asarray(b)
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return np.abs(a.astype(np.int64) - b.astype(np.int64)).astype(np.float64)
    if a.dtype == b.dtype and a.dtype.itemsize == 1 and a.dtype.kind == "V":  # ml_dtypes' INT4, FP8, FP4
        values, ordered = _ranks(a.dtype)
        ra = np.searchsorted(ordered, values[a.view(np.uint8)])
        rb = np.searchsorted(ordered, values[b.view(np.uint8)])
        return np.abs(ra - rb).astype(np.float64)
    x, y = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(x) & np.isnan(y), 0.0, np.abs(x - y))


def _same_input(probe: dict, out_a: dict, out_b: dict, shape) -> np.ndarray | None:
    """Per element, whether the node read equal values on both sides; None when that cannot be told."""
    source = probe.get("input")
    if source is None:
        return None
    if source not in out_a and source not in out_b:
        return np.ones(shape, bool)  # a constant of the model: the same bytes on both sides
    if source not in out_a or source not in out_b:
        return None
    x, y = np.asarray(out_a[source]), np.asarray(out_b[source])
    if x.shape != tuple(shape) or y.shape != tuple(shape):
        return None
    return code_distance(x, y) == 0


def _division_or_reciprocal(source, a: np.ndarray, b: np.ndarray, scale: float, zero_point: float) -> np.ndarray:
    """Per element, whether codes a and b are the two roundings of one input: x / s (ONNX) and x * float32(1/s)
    (TensorRT's documented arithmetic), both in float32, rounded half to even in the codes' type."""
    x = np.asarray(source).astype(np.float32)
    s = np.float32(scale)
    with np.errstate(all="ignore"):
        by_division, by_reciprocal = x / s, x * (np.float32(1) / s)
    if "int" in a.dtype.name:
        codes = [np.rint(v).astype(np.float64) + zero_point for v in (by_division, by_reciprocal)]
    else:  # FP8/FP4: saturate to the type's largest value, then round to it (as both backends do)
        import ml_dtypes

        top = float(ml_dtypes.finfo(a.dtype).max)
        codes = [np.clip(v, -top, top).astype(a.dtype).astype(np.float64) for v in (by_division, by_reciprocal)]
    got_a, got_b = a.astype(np.float64), b.astype(np.float64)
    return ((got_a == codes[0]) & (got_b == codes[1])) | ((got_a == codes[1]) & (got_b == codes[0]))


def compare(out_a: dict, out_b: dict, probes: list[dict]) -> list[dict]:
    """One row per judged probe both backends reported, in the model's order."""
    rows = []
    for probe in probes:
        tensor = probe.get("tensor")
        if probe.get("op") not in JUDGED or tensor not in out_a or tensor not in out_b:
            continue
        x, y = np.asarray(out_a[tensor]), np.asarray(out_b[tensor])
        row = {"tensor": tensor, "node": probe.get("node"), "op": probe.get("op"), "elements": int(x.size)}
        if probe.get("case"):
            row["case"] = probe["case"]  # the case that holds this node (an imported model's): the one to look at
        if x.shape != y.shape:
            rows.append({**row, "differ": int(x.size), "propagated": 0, "rounding": 0, "parts": int(x.size)})
            continue
        distance = code_distance(x, y)
        if probe["op"] == "dequantize" and probe.get("step"):
            distance = distance / float(probe["step"])
        same = _same_input(probe, out_a, out_b, x.shape)
        differ = distance > 0
        judged = differ if same is None else differ & same  # unknown inputs: every difference is the node's
        parts = judged & (distance > (1 if probe["op"] == "quantize" else SLACK))
        if probe["op"] == "quantize" and "scale" in probe:  # one code apart: only as division and reciprocal differ
            source = probe.get("input")
            if source in out_a:
                one = judged & ~parts
                parts |= one & ~_division_or_reciprocal(out_a[source], x, y, probe["scale"], probe["zero_point"])
        rows.append(
            {
                **row,
                "differ": int(np.count_nonzero(differ)),
                "propagated": int(np.count_nonzero(differ & ~judged)),
                "rounding": int(np.count_nonzero(judged & ~parts)),
                "parts": int(np.count_nonzero(parts)),
                "max_steps": round(float(np.max(distance)), 3) if distance.size else 0.0,
            }
        )
    return rows


def common_probes(outcome_a, outcome_b) -> list[dict] | None:
    """The probes both runners list (in the first one's order); None when either reports none."""
    pa, pb = (o.details.get("probes") if isinstance(o.details, dict) else None for o in (outcome_a, outcome_b))
    if not pa or not pb:
        return None
    theirs = {p.get("tensor") for p in pb if isinstance(p, dict)}
    return [p for p in pa if isinstance(p, dict) and p.get("tensor") in theirs]


def describe(rows: list[dict]) -> tuple[dict | None, str]:
    """The first node whose own arithmetic differs (or None), and a line saying what the probes show."""
    first_part = next((r for r in rows if r["parts"]), None)
    first_diff = next((r for r in rows if r["differ"]), None)
    rounding = sum(r["rounding"] for r in rows)
    text = f"{len(rows)} Q/DQ tensors compared"
    if first_part is not None:
        text += (
            f"; they part at {first_part['op']} {first_part['node']!r}: {first_part['parts']} of "
            f"{first_part['elements']} elements differ by more than one step from equal inputs (up to "
            f"{first_part['max_steps']})" + (f", case {first_part['case']}" if first_part.get("case") else "")
        )
    elif first_diff is None:
        text += ", all equal"
    else:
        text += ", no node's own arithmetic differs"
    if first_diff is not None:
        text += f"; first differs at {first_diff['node']!r}"
    if rounding:
        text += f"; {rounding} element(s) one code apart from equal inputs (rounding at a code boundary)"
    return first_part, text

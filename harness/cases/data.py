"""Case data made into arrays: literals, `arange`, `fill`, seeded `random`, `.npy` files inside cases/."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from harness.cases import dtypes
from harness.cases.limits import MAX_ELEMENTS
from harness.cases.numbers import Number, NumberError, nearest, parse_number

# Inputs larger than this are never materialised by the harness (a case about the 2^31-1 volume limit must be
# refused by a backend's build, before any data exists).
MAX_MATERIALISED_ELEMENTS = MAX_ELEMENTS


class DataError(ValueError):
    pass


def literal_shape(value: Any) -> tuple[int, ...]:
    """Shape of nested lists; raises DataError when ragged."""
    if not isinstance(value, list):
        return ()
    if not value:
        return (0,)
    shapes = {literal_shape(v) for v in value}
    if len(shapes) != 1:
        raise DataError("ragged nested list: rows differ in length")
    return (len(value), *shapes.pop())


def parse_leaves(value: Any) -> list[Number]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in parse_leaves(item)]
    return [parse_number(value)]


def spec_shape(spec: Any) -> tuple[int, ...] | None:
    """The shape a spec implies on its own (literal data), or None (generators take the declared shape)."""
    if isinstance(spec, dict):
        if "arange" in spec:
            return (arange_count(spec["arange"]),)
        return None
    return literal_shape(spec)


def arange_count(a: dict) -> int:
    """How many values `arange` makes, computed exactly and checked before any is made."""
    start, stop, step = (parse_number(a.get(k, d)) for k, d in (("start", 0), ("stop", None), ("step", 1)))
    if not all(isinstance(v, Fraction) for v in (start, stop, step)):
        raise DataError("`arange` needs finite start, stop and step")
    if step == 0:
        raise DataError("`arange` step must not be 0")
    count = max(0, math.ceil((stop - start) / step))
    if count > MAX_ELEMENTS:
        raise DataError(f"`arange` makes {_count(count)} values, over the limit of {MAX_ELEMENTS:,} elements")
    return count


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"{float(n):.3g}"


def check_random(r: dict, type_name: str | None) -> None:
    """Bounds a generator can honour: finite, low < high, integers within int64 and the tensor's type."""
    num = {k: parse_number(r[k]) for k in ("low", "high", "mean", "std") if k in r}
    for k, v in num.items():
        if not isinstance(v, Fraction):
            raise DataError(f"`random` {k} must be finite, not {v}")
    seed = r.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise DataError(f"`random` seed must be an integer from 0 to 2**64-1, not {seed!r}")
    dist = r.get("distribution")
    if dist == "normal":
        if num.get("std", 1) < 0:
            raise DataError("`random` std must not be negative")
        return
    low, high = (
        num.get("low", Fraction(-1 if dist == "uniform" else -128)),
        num.get("high", Fraction(1 if dist == "uniform" else 128)),
    )
    if not low < high:
        raise DataError(f"`random` low ({low}) must be below high ({high})")
    if dist == "integers":
        if low.denominator != 1 or high.denominator != 1:
            raise DataError("`random` integers need integer low and high")
        if not (-(2**63) <= low and high <= 2**63):
            raise DataError(f"`random` integers must lie within int64, not [{low}, {high})")
    elif max(abs(low), abs(high)) > Fraction(np.finfo(np.float64).max):
        raise DataError("`random` bounds beyond float64")


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and type of a .npy file from its header alone; object arrays (pickles) and truncated files refused."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise DataError(f"{path.name} is not a readable .npy file: {exc}") from None
    if dtype.hasobject:
        raise DataError(f"{path.name} holds Python objects (a pickle); only plain numeric arrays are read")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise DataError(f"{path.name} holds {count:,} elements, over the limit of {MAX_ELEMENTS:,}")
    needed = offset + count * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise DataError(f"{path.name} is truncated: {size} bytes, its header needs {needed}")
    return tuple(shape), dtype


def npy_path(spec: Any, case_file: Path, root: Path) -> Path | None:
    """The resolved .npy path of a spec, or None; raises DataError when it leaves the cases root."""
    if not (isinstance(spec, dict) and "npy" in spec):
        return None
    path = (case_file.parent / spec["npy"]).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"data file {spec['npy']!r} is outside the cases folder {root}")
    return path


def to_array(values: list[Number], np_type: np.dtype) -> np.ndarray:
    """Exact numbers into an array of the given type: integers must fit, floats round once (to nearest even)."""
    t = dtypes.dtype_of(np.empty(0, np_type))
    if t.kind == "int":
        out = []
        lo, hi = (
            t.qmin if t.qmin is not None else np.iinfo(np_type).min,
            t.qmax if t.qmax is not None else np.iinfo(np_type).max,
        )
        for v in values:
            if not isinstance(v, Fraction) or v.denominator != 1 or not lo <= v <= hi:
                raise DataError(f"{v} is not a value of {t.name} (integers {lo} to {hi})")
            out.append(int(v))
        return np.array(out, dtype=np_type)
    if t.np_type in (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64)):
        return np.array([nearest(v, np_type) for v in values], dtype=np_type)
    # ml_dtypes floats (bfloat16, fp8, fp4): through float64, which is exact for every value they hold.
    with np.errstate(over="ignore"):
        return np.array([float(v) for v in values], dtype=np.float64).astype(np_type)


def materialise(spec: Any, shape: tuple[int, ...] | None, type_name: str, case_file: Path, root: Path) -> np.ndarray:
    """One data spec as an array of `type_name`, reshaped to `shape` when given (same element count)."""
    np_type = dtypes.dtype(type_name).np_type
    if shape is not None and math.prod(shape) > MAX_MATERIALISED_ELEMENTS:
        raise DataError(f"refusing to materialise {math.prod(shape)} elements (limit {MAX_MATERIALISED_ELEMENTS})")
    try:
        array = _generate(spec, shape, np_type, case_file, root)
    except NumberError as exc:
        raise DataError(str(exc)) from None
    if shape is not None:
        if array.size != math.prod(shape):
            raise DataError(f"data has {array.size} elements, shape {list(shape)} needs {math.prod(shape)}")
        array = array.reshape(shape)
    return array


def _generate(spec: Any, shape: tuple[int, ...] | None, np_type: np.dtype, case_file: Path, root: Path) -> np.ndarray:
    if not isinstance(spec, dict):
        literal = to_array(parse_leaves(spec), np_type).reshape(literal_shape(spec))
        if literal.size == 1 and shape is not None and math.prod(shape) != 1:
            return np.full(shape, literal.reshape(()), dtype=np_type)  # a scalar broadcast to the declared shape
        return literal
    if "fill" in spec:
        if shape is None:
            raise DataError("`fill` needs a declared shape")
        return np.full(shape, to_array([parse_number(spec["fill"])], np_type)[0], dtype=np_type)
    if "arange" in spec:
        a = spec["arange"]
        start, step = parse_number(a.get("start", 0)), parse_number(a.get("step", 1))
        count = arange_count(a)
        return to_array([start + i * step for i in range(count)], np_type)
    if "random" in spec:
        if shape is None:
            raise DataError("`random` needs a declared shape")
        r = spec["random"]
        rng = np.random.default_rng(r["seed"])
        num = {k: float(parse_number(r[k])) for k in ("low", "high", "mean", "std") if k in r}
        if r["distribution"] == "uniform":
            values = rng.uniform(num.get("low", -1.0), num.get("high", 1.0), size=shape)
        elif r["distribution"] == "normal":
            values = rng.normal(num.get("mean", 0.0), num.get("std", 1.0), size=shape)
        else:
            values = rng.integers(int(num.get("low", -128)), int(num.get("high", 128)), size=shape)
        return values.astype(np_type)
    if "npy" in spec:
        path = npy_path(spec, case_file, root)
        npy_header(path)  # refused before np.load allocates anything
        array = np.load(path, allow_pickle=False)
        return array.astype(np_type, copy=False)
    raise DataError(f"unknown data spec {sorted(spec)}")

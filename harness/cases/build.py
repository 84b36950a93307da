"""One expanded case body becomes a `Case`: expectations, tolerances, overrides and requirements read, data and
values checked against the network's shapes and types, every problem at its line."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from harness.cases import data as data_mod
from harness.cases import dtypes
from harness.cases import limits
from harness.cases.case import Case, Documented, Expectation, Layer, Override, Requirement, Selector, Tolerance
from harness.cases.numbers import NumberError, parse_number
from harness.cases.shapes import LAYER_ATTRS, ShapeError, infer_shape
from harness.cases.model import model_file, structure_problems
from harness.cases.problems import CaseFileError, CaseLines, Problems


def _selector(entry: dict) -> Selector:
    backends = entry["backend"]
    return Selector(tuple(backends) if isinstance(backends, list) else (backends,), entry.get("version"))


def _tolerance(spec: Any, path: Path, line: int) -> Tolerance:
    if spec is None or spec == "exact":
        return Tolerance("exact")
    try:
        if "steps" in spec:
            return Tolerance("steps", steps=int(spec["steps"]))
        atol, rtol = (parse_number(spec.get(k, 0)) for k in ("atol", "rtol"))
    except NumberError as exc:
        raise CaseFileError(path, line, f"tolerance: {exc}") from None
    for k, v in (("atol", atol), ("rtol", rtol)):
        if not isinstance(v, Fraction) or v < 0:
            raise CaseFileError(path, line, f"tolerance {k} must be a finite number >= 0, not {v}")
    return Tolerance("close", atol=float(atol), rtol=float(rtol))


def _values(spec: Any, outputs: list[str], path: Path, line: int) -> dict[str, Any]:
    plain_data = not isinstance(spec, dict) or any(k in spec for k in ("arange", "fill", "random", "npy"))
    if plain_data:
        if len(outputs) != 1:
            raise CaseFileError(
                path, line, f"the case has {len(outputs)} outputs: give `values` as a mapping output -> data"
            )
        return {outputs[0]: spec}
    unknown = sorted(set(spec) - set(outputs))
    if unknown:
        raise CaseFileError(path, line, f"`values` names {unknown}, which are not among the outputs {outputs}")
    return dict(spec)


def _expectation(spec: Any, outputs: list[str], path: Path, at: CaseLines, where: tuple) -> Expectation:
    line = at(*where)
    if spec in ("reference", "observe"):
        return Expectation(spec)
    if "reference" in spec:
        return Expectation(
            "reference",
            tolerance=_tolerance(
                (spec["reference"] or {}).get("tolerance"), path, at(*where, "reference", "tolerance")
            ),
        )
    if "error" in spec:
        message = spec["error"].get("message")
        if message is not None:
            try:
                re.compile(message)
            except re.error as exc:
                raise CaseFileError(
                    path,
                    at(*where, "error", "message"),
                    f"error message pattern {message!r} is not a regular expression: {exc}",
                ) from None
        return Expectation("error", category=spec["error"]["category"], message=message)
    return Expectation(
        "values",
        values=_values(spec["values"], outputs, path, line),
        tolerance=_tolerance(spec.get("tolerance"), path, at(*where, "tolerance")),
    )


def _check_specifier(spec: str | None, path: Path, line: int) -> None:
    if spec is None:
        return
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise CaseFileError(
            path, line, f"{spec!r} is not a version specifier (PEP 440, such as '>=10.0,<11')"
        ) from None


def _check_data(
    spec: Any,
    at: CaseLines,
    where: tuple,
    path: Path,
    root: Path,
    declared: tuple | None,
    type_name: str | None,
    big_allowed: bool = False,
) -> None:
    """What `materialise` will need, checked without making anything: numbers readable and in the tensor's type,
    literals not ragged, element counts matching the declared shape and within the limit, `random` bounds,
    `.npy` files inside the cases root with a header that fits."""
    line = at(*where)
    count = math.prod(declared) if declared is not None else None
    try:
        if (
            count is not None
            and count > limits.MAX_ELEMENTS
            and not (big_allowed and isinstance(spec, dict) and "fill" in spec)
        ):
            raise data_mod.DataError(
                f"a tensor of {count:,} elements, over the limit of {limits.MAX_ELEMENTS:,} (only an input whose data "
                "is `fill` in a case that expects an error may be larger: it is never made)"
            )
        npy = data_mod.npy_path(spec, path, root)
        if npy is not None:
            if not npy.is_file():
                raise data_mod.DataError(f"data file {spec['npy']!r} does not exist (or is not a regular file)")
            shape, np_type = data_mod.npy_header(npy)
            if count is not None and math.prod(shape) != count:
                raise data_mod.DataError(
                    f"{npy.name} holds {math.prod(shape)} elements of shape {list(shape)}; the "
                    f"declared shape {list(declared)} needs {count}"
                )
            if np_type.kind not in "biuf" and np_type.kind != "V" and not _ml_dtype(np_type):
                raise data_mod.DataError(f"{npy.name} holds {np_type}, not numbers")
            return
        if isinstance(spec, dict):
            if "arange" in spec:
                _numbers(spec["arange"], at, (*where, "arange"), path)
                n = data_mod.arange_count(spec["arange"])
                if count is not None and n != count:
                    raise data_mod.DataError(
                        f"`arange` makes {n} values; the declared shape {list(declared)} needs {count}"
                    )
            if "random" in spec:
                _numbers(
                    {k: v for k, v in spec["random"].items() if k not in ("seed", "distribution")},
                    at,
                    (*where, "random"),
                    path,
                )
                data_mod.check_random(spec["random"], type_name)
                _check_random_type(spec["random"], type_name)
            if "fill" in spec:
                _check_number(spec["fill"], at, (*where, "fill"), path)
                if type_name and dtypes.dtype(type_name).kind == "int":
                    data_mod.to_array([parse_number(spec["fill"])], dtypes.dtype(type_name).np_type)
            return
        _check_literal(spec, at, where, path)
        shape = data_mod.literal_shape(spec)
        n = math.prod(shape)
        if n > limits.MAX_ELEMENTS:
            raise data_mod.DataError(f"{n:,} literal values, over the limit of {limits.MAX_ELEMENTS:,}")
        if count is not None and shape != () and n != count:
            raise data_mod.DataError(
                f"data of shape {list(shape)} ({n} values) does not fit the declared shape "
                f"{list(declared)} ({count} values)"
            )
        if count is not None and shape == () and count == 0:
            raise data_mod.DataError(f"a value given for the empty shape {list(declared)}")
        if type_name and dtypes.dtype(type_name).kind == "int":  # a zero point of 200 in int8, 1.5: refused here
            data_mod.to_array(data_mod.parse_leaves(spec), dtypes.dtype(type_name).np_type)
    except data_mod.DataError as exc:
        raise CaseFileError(path, line, str(exc)) from None
    except NumberError as exc:
        raise CaseFileError(path, line, str(exc)) from None


def _ml_dtype(np_type) -> bool:
    try:
        dtypes.dtype_of(np.empty(0, np_type))
        return True
    except KeyError:
        return False


def _check_random_type(r: dict, type_name: str | None) -> None:
    """`integers` into an integer type must stay inside it: numpy would wrap 200 to -56 in int8 without a word."""
    if r.get("distribution") != "integers" or not type_name:
        return
    t = dtypes.dtype(type_name)
    if t.kind != "int":
        return
    lo = t.qmin if t.qmin is not None else np.iinfo(t.np_type).min
    hi = t.qmax if t.qmax is not None else np.iinfo(t.np_type).max
    low, high = parse_number(r.get("low", -128)), parse_number(r.get("high", 128))
    if low < lo or high - 1 > hi:
        raise data_mod.DataError(f"`random` integers in [{low}, {high}) do not fit {t.name} [{lo}, {hi}]")


def _numbers(mapping: dict, at: CaseLines, where: tuple, path: Path) -> None:
    for key, value in mapping.items():
        _check_number(value, at, (*where, key), path)


def _check_literal(spec: Any, at: CaseLines, where: tuple, path: Path) -> None:
    stack = [(spec, where)]
    while stack:  # iterative: nesting is bounded by the reader, but keep the stack flat anyway
        item, w = stack.pop()
        if isinstance(item, list):
            stack.extend((v, (*w, i)) for i, v in enumerate(item))
        else:
            _check_number(item, at, w, path)


def _check_number(value: Any, at: CaseLines, where: tuple, path: Path) -> None:
    try:
        parse_number(value)
    except NumberError as exc:
        raise CaseFileError(path, at(*where), str(exc)) from None


def _shape(entry: dict, at: CaseLines, where: tuple, path: Path) -> tuple[int, ...] | None:
    if "shape" not in entry:
        return None
    shape = entry["shape"]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CaseFileError(path, at(*where, "shape"), f"shape {shape} must list integers >= 0 (no 3.0, no -1)")
    return tuple(shape)


def _build(
    body: dict, at: CaseLines, path: Path, root: Path, case_id: str, params: dict, problems: Problems
) -> Case | None:
    """A schema-valid case body as a `Case`; every structural problem is recorded, not only the first."""
    before = len(problems.found)
    network: list[Layer] = []
    defined: dict[str, Layer] = {}
    shapes: dict[str, tuple | None] = {}
    types: dict[str, str | None] = {}  # each tensor's type, to check expected values against it
    for i, entry in enumerate(body["network"]):
        line = at("network", i)
        with problems.collect():
            shape = None
            with problems.collect():
                shape = _shape(entry, at, ("network", i), path)
            layer = Layer(
                op=entry["op"],
                name=entry["name"],
                line=line,
                input=entry.get("input"),
                scale=entry.get("scale"),
                zero_point=entry.get("zero_point"),
                axis=entry.get("axis"),
                to=entry.get("to"),
                dtype=entry.get("dtype"),
                shape=shape,
                value=entry.get("value"),
                inputs=tuple(entry.get("inputs") or ()),
                weight=entry.get("weight"),
                bias=entry.get("bias"),
                attrs=tuple(
                    sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in entry.items() if k in LAYER_ATTRS)
                ),
            )
            if layer.axis is not None and (isinstance(layer.axis, bool) or not isinstance(layer.axis, int)):
                raise CaseFileError(path, at("network", i, "axis"), f"axis {layer.axis!r} is not an integer")
            missing = [
                (role, getattr(layer, role))
                for role in ("input", "weight", "bias", "scale", "zero_point")
                if getattr(layer, role) is not None and getattr(layer, role) not in defined
            ]
            for role, ref in missing:
                problems.add(
                    at("network", i, role), f"layer {layer.name!r}: {role} {ref!r} names no tensor defined before it"
                )
            for k, ref in enumerate(layer.inputs):
                if ref not in defined:
                    problems.add(
                        at("network", i, "inputs", k),
                        f"layer {layer.name!r}: inputs[{k}] {ref!r} names no tensor defined before it",
                    )
            if layer.name in defined:
                raise CaseFileError(path, line, f"tensor name {layer.name!r} is defined twice")
            defined[layer.name] = layer  # defined even if its data is bad: one problem is reported once
            try:
                types[layer.name] = types.get(layer.operands[0]) if layer.compute else layer.output_type
            except KeyError:  # an unknown type name: the schema reports it
                types[layer.name] = None
            network.append(layer)
            shapes[layer.name] = layer.shape if layer.op == "input" else shapes.get(layer.input)
            if layer.compute and all(o in defined for o in layer.operands):
                with problems.collect():
                    try:
                        shapes[layer.name] = infer_shape(layer, shapes)
                    except ShapeError as exc:
                        raise CaseFileError(path, line, f"layer {layer.name!r}: {exc}") from None
            if layer.op == "constant":
                shapes[layer.name] = layer.shape
                _check_data(layer.value, at, ("network", i, "value"), path, root, layer.shape, layer.output_type)
                shapes[layer.name] = layer.shape if layer.shape is not None else data_mod.spec_shape(layer.value)

    outputs = list(body["outputs"])
    model = None
    if "model" in body:  # a whole model file: its outputs are the model's (backends that read it check them)
        with problems.collect():
            model = model_file(body["model"], path, root, at("model"))
    for i, name in enumerate(outputs):
        if name not in defined and "model" not in body:
            problems.add(at("outputs", i), f"output {name!r} names no tensor of the network")

    expect = None
    with problems.collect():
        expect = _expectation(body["expect"], outputs, path, at, ("expect",))
    expects_error = expect is not None and expect.kind == "error"
    if "model" in body:
        for line, problem in structure_problems(network, expect.kind if expect else None, at):
            problems.add(line, problem)

    inputs = dict(body.get("inputs") or {})
    declared_inputs = {layer.name: layer for layer in network if layer.op == "input"}
    for name, spec in inputs.items():
        with problems.collect():
            if name not in declared_inputs:
                raise CaseFileError(path, at("inputs", name), f"data given for {name!r}, which is not an `input` layer")
            layer = declared_inputs[name]
            _check_data(
                spec, at, ("inputs", name), path, root, layer.shape, layer.output_type, big_allowed=expects_error
            )
    for name, layer in declared_inputs.items():
        if name not in inputs:
            problems.add(layer.line, f"input {name!r} has no data under `inputs:`")

    def check_values(values: dict, where: tuple, plain: bool) -> None:
        for name, spec in values.items():
            with problems.collect():
                shape = shapes.get(name)
                _check_data(
                    spec,
                    at,
                    where if plain else (*where, name),
                    path,
                    root,
                    shape if name in defined else None,
                    types.get(name),
                )

    if expect is not None and expect.kind == "values":
        check_values(
            expect.values,
            ("expect", "values"),
            not isinstance(body["expect"]["values"], dict)
            or any(k in body["expect"]["values"] for k in ("arange", "fill", "random", "npy")),
        )

    documented = None
    if "documented" in body:
        d = body["documented"]
        with problems.collect():
            values = _values(d["values"], outputs, path, at("documented", "values"))
            check_values(
                values,
                ("documented", "values"),
                not isinstance(d["values"], dict) or any(k in d["values"] for k in ("arange", "fill", "random", "npy")),
            )
            _check_specifier(d.get("version"), path, at("documented", "version"))
            documented = Documented(
                values,
                _tolerance(d.get("tolerance"), path, at("documented", "tolerance")),
                d["reason"],
                d.get("link"),
                _selector(d) if "backend" in d else None,
            )

    overrides = []
    for i, entry in enumerate(body.get("overrides") or []):
        with problems.collect():
            _check_specifier(entry.get("version"), path, at("overrides", i, "version"))
            o_expect = _expectation(entry["expect"], outputs, path, at, ("overrides", i, "expect"))
            if o_expect.kind == "values":
                check_values(
                    o_expect.values,
                    ("overrides", i, "expect", "values"),
                    not isinstance(entry["expect"]["values"], dict),
                )
            overrides.append(
                Override(
                    _selector(entry),
                    o_expect,
                    entry["reason"],
                    entry.get("link"),
                    at("overrides", i),
                    entry.get("kind", "semantics"),
                )
            )
    requires = []
    for i, entry in enumerate(body.get("requires") or []):
        with problems.collect():
            _check_specifier(entry.get("version"), path, at("requires", i, "version"))
            requires.append(Requirement(_selector(entry), entry["reason"]))

    for name in body.get("interpretation") or {}:
        if name not in defined or defined[name].op not in ("quantize", "dequantize"):
            problems.add(at("interpretation", name), f"interpretation: {name!r} names no quantize or dequantize layer")
    if len(problems.found) > before or expect is None:
        return None
    return Case(
        id=case_id,
        file=path,
        root=root,
        line=at("name") if "name" in body and at("name") else 1,
        title=body["title"],
        source=body["source"],
        tags=list(body.get("tags") or []),
        severity=body.get("severity", "normal"),
        tier=body.get("tier", "quick"),
        params=params,
        network=network,
        outputs=outputs,
        inputs=inputs,
        expect=expect,
        documented=documented,
        overrides=overrides,
        requires=requires,
        target=dict(body.get("target") or {}),
        raw=body,
        runs_quantized=list(body.get("runs_quantized") or []),
        interpretation=dict(body.get("interpretation") or {}),
        model=model,
    )

"""A YAML case file becomes `Case` objects: YAML, then the JSON Schema, then structure, each problem `file:line: msg`.

Case ids: the file's path under the cases root without `.yaml`, plus `::name` for a file holding several cases,
plus `::k=v,...` for parameters expanded from `matrix:` (in the matrix's own order). Ids never depend on run-time
values, so reports and history can key on them.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import data as data_mod
from .case import Case, Documented, Expectation, Layer, Override, Requirement, Selector, Tolerance
from .numbers import NumberError, parse_number

SCHEMA_PATH = Path(__file__).parent / "schema" / "case.schema.json"
CASE_SUFFIXES = (".yaml", ".yml")
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class CaseFileError(Exception):
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@lru_cache(maxsize=1)
def _case_validator() -> jsonschema.protocols.Validator:
    full = schema()
    sub = {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/fullCase"}
    return jsonschema.Draft202012Validator(sub)


# --- line numbers -----------------------------------------------------------------------------------------------

class LineMap:
    """Maps a path of keys/indices in the YAML document to its 1-based line, from `yaml.compose` nodes."""

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value
                self.lines[(*path, k)] = key.start_mark.line + 1
                self._walk(value, (*path, k))
                self.lines[(*path, k)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def line(self, path: tuple) -> int:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


class _CaseLines:
    """Line lookup for one case of a file: its own keys first, then keys shared at the file's top level."""

    def __init__(self, lines: LineMap, prefix: tuple):
        self.lines, self.prefix = lines, prefix

    def __call__(self, *path: Any) -> int:
        own = (*self.prefix, *path)
        if self.prefix and path and own[: len(self.prefix) + 1] not in self.lines.lines:
            return self.lines.line(path)  # the key is shared, written at the top level
        return self.lines.line(own)


# --- public entry points -------------------------------------------------------------------------------------------

def find_root(path: Path) -> Path:
    """The cases root of a file: the nearest enclosing folder named `cases`, else the file's folder."""
    path = path.resolve()
    for parent in path.parents:
        if parent.name == "cases":
            return parent
    return path.parent


def iter_case_files(paths: list[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.suffix in CASE_SUFFIXES and f.is_file())
        else:
            yield p


def load_file(path: Path, root: Path | None = None) -> list[Case]:
    """All cases of one file; raises CaseFileError on the first problem (see `check_file` for all of them)."""
    cases, errors = check_file(path, root)
    if errors:
        raise errors[0]
    return cases


def check_file(path: Path, root: Path | None = None) -> tuple[list[Case], list[CaseFileError]]:
    path = Path(path)
    root = Path(root) if root is not None else find_root(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [CaseFileError(path, 1, f"cannot read file: {exc}")]
    file_hash = hashlib.sha256(data).hexdigest()[:16]
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [], [CaseFileError(path, line, f"YAML syntax error: {problem}")]
    lines = LineMap(text)
    if not isinstance(doc, dict):
        return [], [CaseFileError(path, 1, "a case file must be a mapping (one case) or hold `cases:` (a list)")]

    rel = path.resolve().relative_to(root.resolve()) if path.resolve().is_relative_to(root.resolve()) else Path(path.name)
    base_id = rel.with_suffix("").as_posix()

    if "cases" in doc:
        entries = doc["cases"]
        if not isinstance(entries, list) or not entries:
            return [], [CaseFileError(path, lines.line(("cases",)), "`cases:` must be a non-empty list of cases")]
        shared = {k: v for k, v in doc.items() if k != "cases"}
        units = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                return [], [CaseFileError(path, lines.line(("cases", i)), "each entry of `cases:` must be a mapping")]
            units.append(({**copy.deepcopy(shared), **entry}, _CaseLines(lines, ("cases", i)), True))
    else:
        units = [(doc, _CaseLines(lines, ()), False)]

    cases, errors, seen = [], [], set()
    for merged, at, multi in units:
        try:
            for case in _expand(merged, at, path, root, base_id, multi):
                if case.id in seen:
                    raise CaseFileError(path, case.line, f"duplicate case id {case.id!r}")
                seen.add(case.id)
                case.file_hash = file_hash
                cases.append(case)
        except CaseFileError as exc:
            errors.append(exc)
    return cases, errors


# --- expansion and checks ------------------------------------------------------------------------------------------

def _expand(merged: dict, at: _CaseLines, path: Path, root: Path, base_id: str, multi: bool) -> Iterator[Case]:
    matrix = merged.get("matrix") or {}
    if not isinstance(matrix, dict) or not all(isinstance(v, list) and v for v in matrix.values()):
        raise CaseFileError(path, at("matrix"), "`matrix:` must map each parameter to a non-empty list")
    name = merged.get("name")
    case_id = base_id + (f"::{name}" if multi and name else "")
    keys = list(matrix)
    for combo in itertools.product(*(matrix[k] for k in keys)) if keys else [()]:
        params = dict(zip(keys, combo))
        body = {k: v for k, v in merged.items() if k != "matrix"}
        if params:
            body = _substitute(body, params, path, at)
        suffix = "::" + ",".join(f"{k}={_fmt(v)}" for k, v in params.items()) if params else ""
        _validate_schema(body, at, path, multi)
        yield _build(body, at, path, root, case_id + suffix, params, merged)


def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _substitute(node: Any, params: dict, path: Path, at: _CaseLines, where: tuple = ()) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, params, path, at, (*where, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, params, path, at, (*where, i)) for i, v in enumerate(node)]
    if isinstance(node, str):
        whole = _TEMPLATE.fullmatch(node)
        for name in _TEMPLATE.findall(node):
            if name not in params:
                raise CaseFileError(path, at(*where), f"`${{{name}}}` names no parameter of `matrix:`")
        if whole:
            return params[whole.group(1)]
        return _TEMPLATE.sub(lambda m: _fmt(params[m.group(1)]), node)
    return node


def _validate_schema(body: dict, at: _CaseLines, path: Path, multi: bool) -> None:
    errors = sorted(_case_validator().iter_errors(body), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
    if multi and "name" not in body:
        raise CaseFileError(path, at(), "each case of a `cases:` list needs a `name`")
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    where = tuple(error.absolute_path)
    raise CaseFileError(path, at(*where), _schema_message(error, where, body))


def _schema_message(error: jsonschema.ValidationError, where: tuple, body: dict) -> str:
    dotted = ".".join(str(p) for p in where) or "(top level)"
    # A layer with an unknown `op` is the commonest mistake; say it in words.
    if len(where) >= 2 and where[0] == "network":
        layer = body["network"][where[1]] if isinstance(body.get("network"), list) else None
        if isinstance(layer, dict) and layer.get("op") not in ("input", "constant", "cast", "quantize", "dequantize"):
            return f"unknown layer type {layer.get('op')!r} at {dotted} (known: input, constant, cast, quantize, dequantize)"
    if error.validator == "additionalProperties":
        return f"{dotted}: {error.message}"
    if error.validator == "required":
        return f"{dotted}: {error.message}"
    return f"{dotted}: {error.message}"


def _selector(entry: dict) -> Selector:
    backends = entry["backend"]
    return Selector(tuple(backends) if isinstance(backends, list) else (backends,), entry.get("version"))


def _tolerance(spec: Any) -> Tolerance:
    if spec is None or spec == "exact":
        return Tolerance("exact")
    if "steps" in spec:
        return Tolerance("steps", steps=int(spec["steps"]))
    return Tolerance("close", atol=float(parse_number(spec.get("atol", 0))), rtol=float(parse_number(spec.get("rtol", 0))))


def _values(spec: Any, outputs: list[str], path: Path, line: int) -> dict[str, Any]:
    plain_data = not isinstance(spec, dict) or any(k in spec for k in ("arange", "fill", "random", "npy"))
    if plain_data:
        if len(outputs) != 1:
            raise CaseFileError(path, line, f"the case has {len(outputs)} outputs: give `values` as a mapping output -> data")
        return {outputs[0]: spec}
    unknown = sorted(set(spec) - set(outputs))
    if unknown:
        raise CaseFileError(path, line, f"`values` names {unknown}, which are not among the outputs {outputs}")
    return dict(spec)


def _expectation(spec: Any, outputs: list[str], path: Path, line: int) -> Expectation:
    if spec in ("reference", "observe"):
        return Expectation(spec)
    if "reference" in spec:
        return Expectation("reference", tolerance=_tolerance((spec["reference"] or {}).get("tolerance")))
    if "error" in spec:
        message = spec["error"].get("message")
        if message is not None:
            try:
                re.compile(message)
            except re.error as exc:
                raise CaseFileError(path, line, f"error message pattern {message!r} is not a regular expression: {exc}") from None
        return Expectation("error", category=spec["error"]["category"], message=message)
    return Expectation("values", values=_values(spec["values"], outputs, path, line), tolerance=_tolerance(spec.get("tolerance")))


def _check_specifier(spec: str | None, path: Path, line: int) -> None:
    if spec is None:
        return
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise CaseFileError(path, line, f"{spec!r} is not a version specifier (PEP 440, such as '>=10.0,<11')") from None


def _check_data(spec: Any, at: _CaseLines, where: tuple, path: Path, root: Path, declared: tuple | None) -> None:
    """Numbers readable, literals not ragged and fitting the declared shape, data files inside the cases root."""
    try:
        npy = data_mod.npy_path(spec, path, root)
    except data_mod.DataError as exc:
        raise CaseFileError(path, at(*where), str(exc)) from None
    if npy is not None:
        if not npy.is_file():
            raise CaseFileError(path, at(*where), f"data file {spec['npy']!r} does not exist")
        return
    if isinstance(spec, dict):
        for key, value in (spec.get("arange") or spec.get("random") or {}).items():
            if key not in ("seed", "distribution"):
                _check_number(value, at, (*where, key), path)
        if "fill" in spec:
            _check_number(spec["fill"], at, (*where, "fill"), path)
        return
    _check_literal(spec, at, where, path)
    try:
        shape = data_mod.literal_shape(spec)
    except data_mod.DataError as exc:
        raise CaseFileError(path, at(*where), str(exc)) from None
    if declared is not None and shape != () and _prod(shape) != _prod(declared):
        raise CaseFileError(path, at(*where), f"data of shape {list(shape)} does not fit the declared shape {list(declared)}")


def _check_literal(spec: Any, at: _CaseLines, where: tuple, path: Path) -> None:
    if isinstance(spec, list):
        for i, item in enumerate(spec):
            _check_literal(item, at, (*where, i), path)
    else:
        _check_number(spec, at, where, path)


def _check_number(value: Any, at: _CaseLines, where: tuple, path: Path) -> None:
    try:
        parse_number(value)
    except NumberError as exc:
        raise CaseFileError(path, at(*where), str(exc)) from None


def _prod(shape: tuple) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _build(body: dict, at: _CaseLines, path: Path, root: Path, case_id: str, params: dict, merged: dict) -> Case:
    network: list[Layer] = []
    defined: dict[str, Layer] = {}
    for i, entry in enumerate(body["network"]):
        line = at("network", i)
        layer = Layer(
            op=entry["op"], name=entry["name"], line=line, input=entry.get("input"), scale=entry.get("scale"),
            zero_point=entry.get("zero_point"), axis=entry.get("axis"), to=entry.get("to"), dtype=entry.get("dtype"),
            shape=tuple(entry["shape"]) if "shape" in entry else None, value=entry.get("value"),
        )
        if not isinstance(layer.axis, (int, type(None))):
            raise CaseFileError(path, line, f"axis {layer.axis!r} is not an integer")
        for role in ("input", "scale", "zero_point"):
            ref = getattr(layer, role)
            if ref is not None and ref not in defined:
                raise CaseFileError(path, at("network", i, role),
                                    f"layer {layer.name!r}: {role} {ref!r} names no tensor defined before it")
        if layer.name in defined:
            raise CaseFileError(path, line, f"tensor name {layer.name!r} is defined twice")
        if layer.op == "constant":
            _check_data(layer.value, at, ("network", i, "value"), path, root, layer.shape)
        defined[layer.name] = layer
        network.append(layer)

    outputs = list(body["outputs"])
    for i, name in enumerate(outputs):
        if name not in defined:
            raise CaseFileError(path, at("outputs", i), f"output {name!r} names no tensor of the network")

    inputs = dict(body.get("inputs") or {})
    declared_inputs = {layer.name: layer for layer in network if layer.op == "input"}
    for name, spec in inputs.items():
        if name not in declared_inputs:
            raise CaseFileError(path, at("inputs", name), f"data given for {name!r}, which is not an `input` layer")
        _check_data(spec, at, ("inputs", name), path, root, declared_inputs[name].shape)
    for name, layer in declared_inputs.items():
        if name not in inputs:
            raise CaseFileError(path, layer.line, f"input {name!r} has no data under `inputs:`")

    expect = _expectation(body["expect"], outputs, path, at("expect"))
    for name, spec in expect.values.items():
        _check_data(spec, at, ("expect", "values") if len(expect.values) == 1 and not isinstance(body["expect"]["values"], dict)
                    else ("expect", "values", name), path, root, None)

    documented = None
    if "documented" in body:
        d = body["documented"]
        documented = Documented(_values(d["values"], outputs, path, at("documented")), _tolerance(d.get("tolerance")),
                                d["reason"], d.get("link"))

    overrides = []
    for i, entry in enumerate(body.get("overrides") or []):
        line = at("overrides", i)
        _check_specifier(entry.get("version"), path, at("overrides", i, "version"))
        overrides.append(Override(_selector(entry), _expectation(entry["expect"], outputs, path, line), entry["reason"],
                                  entry.get("link"), line))
    requires = []
    for i, entry in enumerate(body.get("requires") or []):
        _check_specifier(entry.get("version"), path, at("requires", i, "version"))
        requires.append(Requirement(_selector(entry), entry["reason"]))

    return Case(
        id=case_id, file=path, root=root, line=at("name") if "name" in body and at("name") else 1,
        title=body["title"], source=body["source"], tags=list(body.get("tags") or []),
        severity=body.get("severity", "normal"), tier=body.get("tier", "quick"), params=params,
        network=network, outputs=outputs, inputs=inputs, expect=expect, documented=documented,
        overrides=overrides, requires=requires, onnx=dict(body.get("onnx") or {}), target=dict(body.get("target") or {}),
        raw=body,
    )

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
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import data as data_mod
from . import dtypes, limits, yamlread
from .case import Case, Documented, Expectation, Layer, Override, Requirement, Selector, Tolerance
from .numbers import NumberError, parse_number
from .parsecache import ParseCache
from .shapes import LAYER_ATTRS, ShapeError, infer_shape

if TYPE_CHECKING:  # imported for real only where the fast schema path rejects a case
    import jsonschema

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
def _fast_validators():
    """The schema compiled to Python by fastjsonschema (about 10x jsonschema's speed): every case of a large matrix
    is checked by it; jsonschema runs only on a case it rejects, for its full, precise messages. A layer's rules are
    `if op ... then ...` conditions, which the compiled code evaluates by raising and catching an exception per
    rule and layer; here each layer is checked only against its own op's rule instead (same verdict, no raising)."""
    import fastjsonschema

    full = schema()
    defs = full["$defs"]
    layer = defs["layer"]
    rules = {}
    for rule in layer["allOf"]:
        condition = rule["if"]["properties"]["op"]
        for op in condition.get("enum") or [condition["const"]]:
            rules[op] = rule["then"]
    draft = "http://json-schema.org/draft-07/schema#"
    plain_layer = {
        "type": "object",
        "required": ["op", "name"],
        "properties": {"op": {"enum": sorted(rules)}, "name": layer["properties"]["name"]},
    }
    case = fastjsonschema.compile(
        {"$schema": draft, "$defs": {**defs, "layer": plain_layer}, "$ref": "#/$defs/fullCase"}
    )
    per_op = {op: fastjsonschema.compile({"$schema": draft, "$defs": defs, **then}) for op, then in rules.items()}
    return case, per_op


def _schema_valid(body: dict) -> bool:
    try:
        case, per_op = _fast_validators()
        case(body)
        for layer in body["network"]:
            per_op[layer["op"]](layer)
        return True
    except Exception:  # JsonSchemaException, or anything it cannot compile: jsonschema decides
        return False


@lru_cache(maxsize=1)
def _case_validator() -> "jsonschema.protocols.Validator":
    import jsonschema  # only for a case the compiled fast path rejects: its full, precise messages

    full = schema()
    sub = {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/fullCase"}
    return jsonschema.Draft202012Validator(sub)


# --- line numbers -----------------------------------------------------------------------------------------------


class LineMap:
    """Maps a path of keys/indices in the YAML document to its 1-based line (filled by `yamlread.read`)."""

    def __init__(self, lines: dict[tuple, int] | None = None):
        self.lines: dict[tuple, int] = lines or {}

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


class _Problems:
    """The problems of one file, each once (a matrix repeats them per combination), in line order."""

    def __init__(self, path: Path):
        self.path = path
        self.found: dict[tuple[int, str], CaseFileError] = {}

    def add(self, line: int, message: str) -> None:
        self.found.setdefault((line, message), CaseFileError(self.path, line, message))

    def collect(self):
        """`with problems.collect():` records a CaseFileError raised inside and carries on after the block."""
        return _Collect(self)

    def sorted(self) -> list[CaseFileError]:
        return [self.found[k] for k in sorted(self.found)]


class _Collect:
    def __init__(self, problems: _Problems):
        self.problems = problems

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, CaseFileError):
            self.problems.add(exc.line, exc.message)
            return True
        return False


# --- public entry points -------------------------------------------------------------------------------------------


def find_root(path: Path) -> Path:
    """The cases root of a file: the nearest enclosing folder named `cases`, else the file's folder. The path is
    taken as found, not resolved: a symlinked case file belongs to the cases folder it was found in."""
    path = Path(os.path.abspath(path))
    for parent in path.parents:
        if parent.name == "cases":
            return parent
    return path.parent


def iter_case_files(paths: list[Path]) -> Iterator[Path]:
    """Case files under each path, sorted; a path named explicitly is taken as it is. Folders are walked without
    following symlinked folders (a link to `..` would loop); anything named *.yaml that is not a folder is yielded,
    so that a FIFO or a device is reported by `check_file`, never skipped in silence."""
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            yield p
            continue
        for folder, dirs, files in os.walk(p, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # as pytest: hidden folders are not cases
            for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
                full = Path(folder) / name
                if full.suffix in CASE_SUFFIXES and not full.is_dir():
                    yield full


def load_file(path: Path, root: Path | None = None) -> list[Case]:
    """All cases of one file; raises CaseFileError on the first problem (see `check_file` for all of them)."""
    cases, errors = check_file(path, root)
    if errors:
        raise errors[0]
    return cases


def check_file(
    path: Path,
    root: Path | None = None,
    cache: "ParseCache | None" = None,
) -> tuple[list[Case], list[CaseFileError]]:
    """Every case of a file and every problem found in it. Never raises: a harness bug becomes a problem too.
    With a `ParseCache`, an unchanged file's cases are built from what an earlier read kept."""
    path = Path(path)
    try:
        return _check_file(path, Path(root) if root is not None else find_root(path), cache)
    except Exception as exc:  # the last guard: one file must never stop the run
        return [], [
            CaseFileError(
                path,
                1,
                f"the harness failed reading this file ({type(exc).__name__}: {exc}); please report it with the file",
            )
        ]


def _check_file(path: Path, root: Path, cache: "ParseCache | None" = None) -> tuple[list[Case], list[CaseFileError]]:
    root = Path(os.path.abspath(root))
    problems = _Problems(path)
    twin = _twin_file(path)
    if twin is not None:
        problems.add(1, f"{path.name} and {twin.name} in one folder would have the same case id; rename one")
        return [], problems.sorted()
    if cache is not None:
        cached = _from_cache(cache, path, root)
        if cached is not None:
            return cached, []
    read = yamlread.read(path)
    for line, message in read.problems:
        problems.add(line, message)
    if read.problems:
        return [], problems.sorted()
    doc = read.doc
    file_hash = hashlib.sha256(read.data).hexdigest()[:16]
    lines = LineMap(read.lines)
    if not isinstance(doc, dict):
        return [], [CaseFileError(path, 1, "a case file must be a mapping (one case) or hold `cases:` (a list)")]

    here = Path(os.path.abspath(path))
    rel = here.relative_to(root) if here.is_relative_to(root) else Path(path.name)
    base_id = rel.with_suffix("").as_posix()

    if "cases" in doc:
        entries = doc["cases"]
        if not isinstance(entries, list) or not entries:
            return [], [CaseFileError(path, lines.line(("cases",)), "`cases:` must be a non-empty list of cases")]
        shared = {k: v for k, v in doc.items() if k != "cases"}
        units = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                problems.add(lines.line(("cases", i)), "each entry of `cases:` must be a mapping")
                continue
            units.append(({**copy.deepcopy(shared), **entry}, _CaseLines(lines, ("cases", i)), True))
    else:
        units = [(doc, _CaseLines(lines, ()), False)]

    cases, seen, kept = [], set(), []
    for merged, at, multi in units:
        for case in _expand(merged, at, path, root, base_id, multi, problems):
            if case.id in seen:
                problems.add(case.line, f"duplicate case id {case.id!r}")
                continue
            seen.add(case.id)
            case.file_hash = file_hash
            cases.append(case)
            kept.append({"id": case.id, "params": case.params, "prefix": list(at.prefix), "body": case.raw})
    errors = problems.sorted()
    if cache is not None and not errors:
        cache.put(path, root, read.data, read.lines, kept, read.stat)
    return (cases if not errors else []), errors


def _from_cache(cache: "ParseCache", path: Path, root: Path) -> list[Case] | None:
    """The cases of an unchanged file, built from its kept expansion (data files and structure checked again), or
    None: not kept, changed, or a problem now (a data file changed), which a full read then reports."""
    entry = cache.get(path, root)
    if entry is None:
        return None
    try:
        lines = LineMap({tuple(k): v for k, v in entry["lines"]})
        problems, cases = _Problems(path), []
        for kept in entry["cases"]:
            case = _build(
                kept["body"], _CaseLines(lines, tuple(kept["prefix"])), path, root, kept["id"], kept["params"], problems
            )
            if case is None:
                return None
            case.file_hash = entry["sha256"][:16]
            cases.append(case)
    except (KeyError, TypeError, ValueError, AttributeError, CaseFileError):  # an entry not as kept: a miss
        return None
    return cases


def case_to_data(case: Case) -> dict:
    """A loaded case as plain data (what a worker process gets: no path to re-parse)."""
    return {
        "id": case.id,
        "file": str(case.file),
        "root": str(case.root),
        "line": case.line,
        "params": case.params,
        "body": case.raw,
        "file_hash": case.file_hash,
    }


def case_from_data(data: dict) -> Case:
    """The `Case` a worker runs, rebuilt from `case_to_data` without reading YAML (data files are read as they are
    in the loading process: relative to the case file, inside the cases root)."""
    path, root = Path(data["file"]), Path(data["root"])
    problems = _Problems(path)
    case = _build(data["body"], lambda *where: data["line"], path, root, data["id"], data["params"], problems)
    if case is None:
        raise CaseFileError(path, data["line"], "; ".join(str(p) for p in problems.sorted()))
    case.line, case.file_hash = data["line"], data["file_hash"]
    return case


def _twin_file(path: Path) -> Path | None:
    """`x.yml` beside `x.yaml`: both would be case id `x`. Reported on the `.yml` one."""
    if path.suffix != ".yml":
        return None
    twin = path.with_suffix(".yaml")
    return twin if os.path.lexists(twin) else None


# --- expansion and checks ------------------------------------------------------------------------------------------


def _expand(
    merged: dict, at: _CaseLines, path: Path, root: Path, base_id: str, multi: bool, problems: _Problems
) -> Iterator[Case]:
    matrix = merged.get("matrix") or {}
    if not isinstance(matrix, dict) or not all(isinstance(v, list) and v for v in matrix.values()):
        problems.add(at("matrix"), "`matrix:` must map each parameter to a non-empty list")
        return
    combinations = math.prod(len(v) for v in matrix.values())
    if combinations > limits.MAX_MATRIX_COMBINATIONS:
        problems.add(
            at("matrix"),
            f"`matrix:` expands to {combinations:,} cases, over the limit of {limits.MAX_MATRIX_COMBINATIONS:,}",
        )
        return
    bad_values = [k for k, v in matrix.items() for x in v if isinstance(x, (dict, list))]
    if bad_values:
        problems.add(
            at("matrix", bad_values[0]),
            f"`matrix:` values must be plain scalars ({bad_values[0]!r} holds a collection)",
        )
        return
    name = merged.get("name")
    for where, text in _id_parts(name if multi else None, matrix):
        problem = _id_part_problem(text)
        if problem:
            problems.add(at(*where), problem)
            return
    case_id = base_id + (f"::{name}" if multi and name else "")
    keys = list(matrix)
    for combo in itertools.product(*(matrix[k] for k in keys)) if keys else [()]:
        params = dict(zip(keys, combo))
        body = {k: v for k, v in merged.items() if k != "matrix"}
        with problems.collect():
            body = _substitute(body, params, path, at)
            suffix = "::" + ",".join(f"{k}={_fmt(v)}" for k, v in params.items()) if params else ""
            if _validate_schema(body, at, path, multi, problems):
                case = _build(body, at, path, root, case_id + suffix, params, problems)
                if case is not None:
                    yield case


def _id_parts(name: Any, matrix: dict) -> Iterator[tuple[tuple, str]]:
    """Each text that becomes part of a case id (and so of a path, a node id, a report label), where it is written."""
    if name is not None:
        yield ("name",), str(name)
    for key, values in matrix.items():
        yield ("matrix", key), str(key)
        for i, value in enumerate(values):
            yield ("matrix", key, i), _fmt(value)


def _id_part_problem(text: str) -> str | None:
    """Why a case name or matrix key/value cannot be part of a case id, or None. Path syntax (`/`, `..`) is
    allowed: output paths encode it (bundle.path_safe_id); what no reader can see or tell apart is refused."""
    import unicodedata

    hidden = next((c for c in text if unicodedata.category(c).startswith("C")), None)
    if hidden is not None:
        return (
            f"{text[:40]!r} holds the invisible character U+{ord(hidden):04X} ({unicodedata.name(hidden, 'control')}); "
            "case names and matrix keys/values become case ids"
        )
    if "::" in text:
        return f"{text[:40]!r} holds `::`, which separates the parts of a case id"
    if len(text) > limits.MAX_ID_PART:
        return (
            f"{text[:40]!r}... is {len(text)} characters, over the limit of {limits.MAX_ID_PART} for a case name "
            "or matrix key/value (they become case ids)"
        )
    if not text.strip():
        return "an empty or blank case name or matrix key/value (they become case ids)"
    return None


def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _substitute(node: Any, params: dict, path: Path, at: _CaseLines, where: tuple = ()) -> Any:
    """`${name}` replaced by a matrix parameter; one that names no parameter (or appears without a matrix) is an
    error, never left in the case as text."""
    if isinstance(node, dict):
        return {k: _substitute(v, params, path, at, (*where, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, params, path, at, (*where, i)) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        whole = _TEMPLATE.fullmatch(node)
        for name in _TEMPLATE.findall(node):
            if name not in params:
                where_from = "no `matrix:` is given" if not params else "it names no parameter of `matrix:`"
                raise CaseFileError(path, at(*where), f"`${{{name}}}` cannot be filled in: {where_from}")
        if whole:
            return params[whole.group(1)]
        return _TEMPLATE.sub(lambda m: _fmt(params[m.group(1)]), node)
    return node


def _validate_schema(body: dict, at: _CaseLines, path: Path, multi: bool, problems: _Problems) -> bool:
    """Every schema problem of a case (the most specific error of each), each at its own line."""
    ok = True
    if multi and "name" not in body:
        problems.add(at(), "each case of a `cases:` list needs a `name`")
        ok = False
    if _schema_valid(body):
        return ok
    for error in _case_validator().iter_errors(body):
        # oneOf/anyOf: a described alternative (data, values) is named in words; else the closest branch speaks.
        while error.context and "description" not in error.schema:
            error = _closest(error.context)
        where = tuple(error.absolute_path)
        if error.context:
            shown = json.dumps(error.instance, default=str)
            line, message = (
                at(*where),
                (
                    f"{'.'.join(map(str, where)) or '(top level)'}: "
                    f"{shown[:80] + ('...' if len(shown) > 80 else '')} is not "
                    f"{error.schema['description'].split(';')[0]}"
                ),
            )
        else:
            line, message = _schema_problem(error, where, body, at)
        problems.add(line, message)
        ok = False
    return ok


def _closest(errors) -> jsonschema.ValidationError:
    """The alternative that got furthest into the instance; a type or enum miss only when nothing got further."""
    return max(errors, key=lambda e: (len(e.relative_path), e.validator not in ("type", "enum", "const", "pattern")))


def _schema_problem(error: jsonschema.ValidationError, where: tuple, body: dict, at: _CaseLines) -> tuple[int, str]:
    dotted = ".".join(str(p) for p in where) or "(top level)"
    if "shape" in where:
        i = where.index("shape")
        return at(*where[: i + 1]), f"{'.'.join(map(str, where[: i + 1]))}: a shape lists integers >= 0"
    # A layer with an unknown `op` is the commonest mistake; say it in words.
    if len(where) >= 2 and where[0] == "network":
        layer = body["network"][where[1]] if isinstance(body.get("network"), list) else None
        if isinstance(layer, dict) and layer.get("op") not in ("input", "constant", "cast", "quantize", "dequantize"):
            return at(*where[:2]), (
                f"unknown layer type {layer.get('op')!r} at network.{where[1]} "
                "(known: input, constant, cast, quantize, dequantize)"
            )
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = [k for k in error.instance if k not in allowed and not any(re.search(p, str(k)) for p in patterns)]
        if extra:  # point at the unknown key itself, not at the mapping holding it
            return at(*where, extra[0]), f"{dotted}: unknown key {extra[0]!r} (known: {', '.join(sorted(allowed))})"
    return at(*where), f"{dotted}: {error.message}"


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


def _expectation(spec: Any, outputs: list[str], path: Path, at: _CaseLines, where: tuple) -> Expectation:
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
    at: _CaseLines,
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


def _numbers(mapping: dict, at: _CaseLines, where: tuple, path: Path) -> None:
    for key, value in mapping.items():
        _check_number(value, at, (*where, key), path)


def _check_literal(spec: Any, at: _CaseLines, where: tuple, path: Path) -> None:
    stack = [(spec, where)]
    while stack:  # iterative: nesting is bounded by the reader, but keep the stack flat anyway
        item, w = stack.pop()
        if isinstance(item, list):
            stack.extend((v, (*w, i)) for i, v in enumerate(item))
        else:
            _check_number(item, at, w, path)


def _check_number(value: Any, at: _CaseLines, where: tuple, path: Path) -> None:
    try:
        parse_number(value)
    except NumberError as exc:
        raise CaseFileError(path, at(*where), str(exc)) from None


def _shape(entry: dict, at: _CaseLines, where: tuple, path: Path) -> tuple[int, ...] | None:
    if "shape" not in entry:
        return None
    shape = entry["shape"]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CaseFileError(path, at(*where, "shape"), f"shape {shape} must list integers >= 0 (no 3.0, no -1)")
    return tuple(shape)


def _build(
    body: dict, at: _CaseLines, path: Path, root: Path, case_id: str, params: dict, problems: _Problems
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
    for i, name in enumerate(outputs):
        if name not in defined:
            problems.add(at("outputs", i), f"output {name!r} names no tensor of the network")

    expect = None
    with problems.collect():
        expect = _expectation(body["expect"], outputs, path, at, ("expect",))
    expects_error = expect is not None and expect.kind == "error"

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
                Override(_selector(entry), o_expect, entry["reason"], entry.get("link"), at("overrides", i))
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
        onnx=dict(body.get("onnx") or {}),
        target=dict(body.get("target") or {}),
        raw=body,
        runs_quantized=list(body.get("runs_quantized") or []),
        interpretation=dict(body.get("interpretation") or {}),
    )

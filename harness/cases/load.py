"""A YAML case file becomes `Case` objects: YAML, then the JSON Schema, then structure, each problem `file:line: msg`.

Case ids: the file's path under the cases root without `.yaml`, plus `::name` for a file holding several cases,
plus `::k=v,...` for parameters expanded from `matrix:` (in the matrix's own order). Ids never depend on run-time
values, so reports and history can key on them.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import os
import re
from pathlib import Path
from typing import Any, Iterator

from harness.cases import limits
from harness.cases import yamlread
from harness.cases.case import Case
from harness.cases.parsecache import ParseCache
from harness.cases.build import _build
from harness.cases.problems import CaseFileError, CaseLines, LineMap, Problems
from harness.cases.schemacheck import _validate_schema

__all__ = ["CASE_SUFFIXES", "CaseFileError", "check_file", "load_file", "find_root", "iter_case_files"]

CASE_SUFFIXES = (".yaml", ".yml")
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
    problems = Problems(path)
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
            units.append(({**copy.deepcopy(shared), **entry}, CaseLines(lines, ("cases", i)), True))
    else:
        units = [(doc, CaseLines(lines, ()), False)]

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
        problems, cases = Problems(path), []
        for kept in entry["cases"]:
            case = _build(
                kept["body"], CaseLines(lines, tuple(kept["prefix"])), path, root, kept["id"], kept["params"], problems
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
    problems = Problems(path)
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
    merged: dict, at: CaseLines, path: Path, root: Path, base_id: str, multi: bool, problems: Problems
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


def _substitute(node: Any, params: dict, path: Path, at: CaseLines, where: tuple = ()) -> Any:
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



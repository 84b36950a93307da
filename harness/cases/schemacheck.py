"""A case checked against the JSON Schema (harness/schema/case.schema.json): fast compiled validators for the
common case, jsonschema's own messages, each at its line, where a case is rejected."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING


from harness.cases.problems import CaseLines, Problems

if TYPE_CHECKING:  # imported for real only where the fast schema path rejects a case
    import jsonschema


SCHEMA_PATH = Path(__file__).parent.parent / "schema" / "case.schema.json"


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


def _validate_schema(body: dict, at: CaseLines, path: Path, multi: bool, problems: Problems) -> bool:
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


def _schema_problem(error: jsonschema.ValidationError, where: tuple, body: dict, at: CaseLines) -> tuple[int, str]:
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

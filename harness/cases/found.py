"""Cases found by generated cross-checks (tests/test_generated.py): a disagreement, shrunk by hypothesis, written
as an ordinary case file under `cases/found/`, where it stays and runs with every other case until someone
declares the difference (an `overrides:` entry with its reason) or fixes the backend."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml


def case_body(shape: list[int], x: list, scale: list, axis: int | None, to: str, note: str) -> dict:
    """A Quantize of a network input with a constant scale: the shape of everything the cross-check draws."""
    quantize = {"op": "quantize", "name": "q", "input": "x", "scale": "s", "to": to}
    if axis is not None:
        quantize["axis"] = axis
    return {
        "title": f"Found by a generated cross-check: {to} quantize of a {shape} tensor",
        "source": {"document": "generated cross-check (hypothesis)", "where": note},
        "tags": ["found", to],
        "network": [
            {"op": "input", "name": "x", "dtype": "float32", "shape": list(shape)},
            {
                "op": "constant",
                "name": "s",
                "dtype": "float32",
                "shape": [len(scale)] if axis is not None else [],
                "value": scale if axis is not None else scale[0],
            },
            quantize,
        ],
        "outputs": ["q"],
        "inputs": {"x": x},
        "expect": "reference",
    }


def write(folder: Path, body: dict) -> Path:
    """The case as `<folder>/<content hash>.yaml` (the same finding is written once). Numbers are written exactly:
    float32 values round-trip through their repr."""
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    path = folder / f"{digest}.yaml"
    path.write_text("# yaml-language-server: $schema=../../harness/schema/case.schema.json\n" + text)
    return path

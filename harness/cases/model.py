"""A case that runs a whole model file instead of layers written in YAML: `model: {<format>: file}` (the schema
names the formats; backends that read the format run it, the others skip with their reason).

Its `network` declares only the model's inputs (each an `input` layer with its type and shape, fed from `inputs:`
as in any case), its `outputs` name the model's outputs. A whole model has no documented values: it expects
`observe` (the cross-backend diff compares the backends, node by node where they report intermediate tensors) or
an error of a named category. The file stays inside the cases root and under MAX_MODEL_BYTES; its bytes' hash is
part of the case's content hash, so `qdq compare` sees a changed model as a changed case.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from harness.cases.problems import CaseFileError
from harness.cases.limits import MAX_MODEL_BYTES

MODEL_EXPECTATIONS = ("observe", "error")


@dataclass(frozen=True)
class ModelFile:
    format: str  # the key under `model:`: which backends can read it
    path: Path  # resolved, inside the cases root
    sha256: str  # of its bytes (16 hex digits)


def model_file(spec: dict, case_file: Path, root: Path, line: int) -> ModelFile:
    """The model a `model:` section names, checked: one format, a regular file inside the cases root, not too large."""
    (fmt, name), *more = spec.items()  # the schema allows exactly one format key
    if more:
        raise CaseFileError(case_file, line, f"`model:` names one file, not {len(spec)}")
    path = (case_file.parent / str(name)).resolve()
    if not path.is_relative_to(root.resolve()):
        raise CaseFileError(case_file, line, f"model file {name!r} is outside the cases folder {root}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise CaseFileError(case_file, line, f"model file {name!r}: {exc.strerror or exc}") from None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CaseFileError(case_file, line, f"model file {name!r} is not a regular file")
        if st.st_size > MAX_MODEL_BYTES:
            raise CaseFileError(
                case_file, line, f"model file {name!r} is {st.st_size:,} bytes, over the limit of {MAX_MODEL_BYTES:,}"
            )
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return ModelFile(str(fmt), path, digest.hexdigest()[:16])


def structure_problems(network, expect_kind: str | None, at) -> list[tuple[int, str]]:
    """(line, problem) for what a model case may not hold: layers other than the model's inputs, an expectation of
    values."""
    problems = [
        (layer.line, f"layer {layer.name!r}: a model case declares only the model's inputs (op: input), not {layer.op}")
        for layer in network
        if layer.op != "input"
    ]
    if expect_kind is not None and expect_kind not in MODEL_EXPECTATIONS:
        problems.append(
            (
                at("expect"),
                f"a whole model has no documented values: expect `observe` (the backends are compared with each "
                f"other) or an error, not {expect_kind}",
            )
        )
    return problems

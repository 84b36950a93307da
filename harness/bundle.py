"""The results bundle every run writes: `DIR/results.json` and `DIR/outputs/<case-id>/<backend>.npz`.

results.json (schema_version 1) holds the run's start and end, whether it is partial, the versions of every
backend, the harness and Python, each case file's content hash, one record per (case, backend) and the
cross-backend diffs. It is rewritten atomically (temporary file + rename) as records arrive, so an interrupted run
leaves a valid bundle with `"partial": true`.

Output files: a case id becomes a path by turning `::` into `/` and percent-encoding every character of a segment
outside `A-Za-z0-9._=,+-` (reversible, no collisions): `rules/axis::bad::axis=4` ->
`outputs/rules/axis/bad/axis=4/<backend>.npz`. Each .npz holds one array per output; types numpy lacks (INT4,
FP8, FP4, BF16) are stored as their bit patterns (uint8/uint16), and the entry `__dtypes__` (a JSON string) names
every output's type so `load_outputs` restores them. Loaded with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np

from . import __version__, dtypes

SCHEMA_VERSION = 1
_SAFE = "._=,+-"


def path_safe_id(case_id: str) -> str:
    return "/".join(quote(seg, safe=_SAFE) for part in case_id.split("::") for seg in part.split("/"))


def outputs_path(out_dir: Path, case_id: str, backend: str) -> Path:
    return Path(out_dir) / "outputs" / path_safe_id(case_id) / f"{quote(backend, safe=_SAFE)}.npz"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _encode_npz(outputs: dict[str, np.ndarray]) -> bytes:
    """Arrays as .npz bytes; types numpy lacks are stored as bit patterns, their names in `__dtypes__`."""
    import io

    arrays, types = {}, {}
    for name, value in outputs.items():
        value = np.asarray(value)
        t = dtypes.dtype_of(value)
        types[name] = t.name
        arrays[name] = value if t.numpy_native else value.view(np.dtype(f"u{value.dtype.itemsize}"))
    arrays["__dtypes__"] = np.array(json.dumps(types))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _decode_npz(data) -> dict[str, np.ndarray]:
    import io

    with np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False) as z:
        types = json.loads(str(z["__dtypes__"]))
        return {name: z[name].view(dtypes.dtype(t).np_type) for name, t in types.items()}


def save_outputs(out_dir: Path, case_id: str, backend: str, outputs: dict[str, np.ndarray]) -> Path:
    path = outputs_path(out_dir, case_id, backend)
    _atomic_write(path, _encode_npz(outputs))
    return path


def load_outputs(path: Path) -> dict[str, np.ndarray]:
    return _decode_npz(Path(path))


def inputs_hash(inputs: dict[str, np.ndarray]) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in sorted(inputs):
        a = np.ascontiguousarray(inputs[name])
        h.update(f"{name}:{a.dtype}:{a.shape}:".encode())
        h.update(a.view(np.uint8).tobytes())
    return h.hexdigest()[:16]


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version(), "platform": platform.platform(), "harness": __version__}
    for pkg in ("numpy", "ml_dtypes", "onnx", "onnxruntime", "pytest", "pytest-xdist", "allure-pytest"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    return env


class BundleWriter:
    """Collects records on the controller and keeps results.json valid at every moment."""

    def __init__(self, out_dir: Path, backends: dict[str, dict], argv: list[str] | None = None):
        self.out_dir = Path(out_dir)
        self.doc = {
            "schema_version": SCHEMA_VERSION,
            "partial": True,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "finished": None,
            "exit_status": None,
            "argv": argv or sys.argv,
            "harness_version": __version__,
            "environment": environment(),
            "backends": backends,
            "case_files": {},
            "cases": {},
            "records": [],
            "diffs": [],
        }
        self._last_flush = 0.0
        self.flush()

    def add(self, record: dict) -> None:
        case = record.pop("case", None)
        if case:
            self.doc["cases"].setdefault(record["case_id"], case)
            self.doc["case_files"][case["file"]] = case["file_hash"]
        diffs = record.pop("diffs", None)
        if diffs:
            self.doc["diffs"].extend(diffs)
        self.doc["records"].append(record)
        if time.monotonic() - self._last_flush > 2.0:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        _atomic_write(self.out_dir / "results.json", json.dumps(self.doc, indent=1, default=_json_default).encode())

    def finish(self, exit_status: int, complete: bool) -> None:
        # One record per item: an item xdist re-ran after a worker crash keeps its last record.
        last = {r.get("nodeid") or id(r): r for r in self.doc["records"]}
        self.doc["records"] = sorted(last.values(), key=lambda r: (r["case_id"], r.get("backend") or ""))
        self.doc["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.doc["exit_status"] = exit_status
        self.doc["partial"] = not complete
        self.flush()


def _json_default(obj):
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, Path):
        return obj.as_posix()
    return str(obj)

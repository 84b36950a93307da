"""One run configuration, built once from the command line or pytest's options, recorded in the bundle and sent to
every worker: what `qdq run --opset 21` and `pytest cases/ --qdq-opset 21` both mean (`opset` being an option the
ONNX backends declare, harness/engine/options.py).

Environment variables are read here and nowhere else, and only as documented defaults:

| variable | default of | meaning |
| --- | --- | --- |
| QDQ_BACKEND_TIMEOUT | `--qdq-timeout` | seconds a backend may take on one case (else each backend's own `timeout_s`) |
| QDQ_CACHE | `--qdq-cache` | cache folder (parsed case files, engines, timing caches, bindings for the API check); `~/.cache/qdq-harness` |
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

DEFAULT_REFERENCE = ""  # none named: the installed backend that declares `models_contract = True`


@dataclass(frozen=True)
class RunConfig:
    options: tuple[tuple[str, object], ...] = ()  # (name, value) of the backend families' options given
    timeout_s: float | None = None  # per case; None: each backend's own `timeout_s`
    cache_dir: str = ""  # parsed case files, engines and timing caches
    tier: str = "quick"  # "full" adds cases marked `tier: full`
    reference: str = DEFAULT_REFERENCE  # the backend whose outcome `expect: reference` compares against
    output_budget: int | None = (
        None  # bytes of stored outputs for the whole run; None: harness/results/budget.py's default
    )

    @classmethod
    def defaults(cls) -> "RunConfig":
        return cls(timeout_s=default_timeout(), cache_dir=default_cache())

    def option(self, name: str, default=None):
        """A backend family's option (harness/engine/options.py), or `default` when the run did not give it."""
        return dict(self.options).get(name, default)

    def with_options(self, options: dict) -> "RunConfig":
        return replace(self, options=tuple(sorted(options.items())))

    def as_dict(self) -> dict:
        out = asdict(self)
        out["options"] = dict(self.options)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["options"] = tuple(sorted(dict(known.get("options") or {}).items()))
        return cls(**known)

    def timeout_for(self, backend) -> float:
        return float(self.timeout_s) if self.timeout_s else float(backend.timeout_s)

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir)


def default_timeout() -> float | None:
    value = os.environ.get("QDQ_BACKEND_TIMEOUT")
    return float(value) if value else None


def default_cache() -> str:
    return os.environ.get("QDQ_CACHE") or str(Path.home() / ".cache" / "qdq-harness")

"""The one interface every backend implements, and their discovery through entry points.

Polygraphy's split: `load(case)` is the loader (builds the network, model or engine; build-time refusals are
raised there as `QdqError`), and the `Runner` it returns does `activate` (acquire a device), `infer` and
`deactivate`. Only `activate` may touch a GPU. A third-party package adds a backend by declaring an entry point in
the group `qdq_harness.backends` that names a `Backend` subclass.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from harness.cases.case import Case
    from harness.engine.config import RunConfig

ENTRY_POINT_GROUP = "qdq_harness.backends"


@dataclass(frozen=True)
class Availability:
    available: bool
    version: str | None
    reason: str  # why it is unavailable; empty when available
    kind: str = "not-installed"  # the skip kind of its cases when unavailable (harness/engine/skips.py), e.g. "no-gpu"


class Runner(abc.ABC):
    @property
    def details(self) -> dict:
        """Facts for the record (opset, typing, layer precisions): one dict per runner, never shared."""
        return self.__dict__.setdefault("_details", {})

    @details.setter
    def details(self, value: dict) -> None:
        self.__dict__["_details"] = dict(value)

    @property
    def artifacts(self) -> dict[str, bytes]:
        """Files the report attaches as they were built for this run (e.g. `model.onnx`): never rebuilt for it."""
        return self.__dict__.setdefault("_artifacts", {})

    def activate(self) -> None:
        """Acquire devices and contexts. The only place a GPU may be touched."""

    @abc.abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns every marked output. Runtime refusals are raised as QdqError(phase="run")."""

    def deactivate(self) -> None:
        """Release what `activate` acquired."""

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()


class Backend(abc.ABC):
    name: ClassVar[str]  # what cases' `overrides:`/`requires:` and `--backend` name
    product: ClassVar[str]  # the product whose behaviour it shows, in words
    description: ClassVar[str]
    # Run in a worker process (harness/engine/isolation.py) so that a segfault or a hang fails one case, not the run.
    # True unless a backend declares otherwise: only pure-Python backends should run in the pytest process.
    isolated: ClassVar[bool] = True
    timeout_s: ClassVar[float] = 600.0  # per case, in a worker or in process; QDQ_BACKEND_TIMEOUT overrides it
    # An executable model of the documented contract: the default reference of `expect: reference` (exactly one
    # installed backend should say so; `--qdq-reference NAME` chooses another).
    models_contract: ClassVar[bool] = False
    # How it computes a quantized conv/matmul: "simulated" (DQ, float op, Q: ONNX Runtime, QAT) or "fused" (one
    # integer kernel, as TensorRT builds it). The cross-backend diff labels differences between the two kinds.
    arithmetic: ClassVar[str] = "simulated"

    def details(self) -> dict:
        """Facts about the installation for the bundle (versions, GPU); never raises."""
        return {}

    def configure(self, config: "RunConfig") -> None:
        """The run's configuration (ONNX opset, cache folder, ...), given once before any case, in every process."""
        self.config = config

    def worker_environment(self, worker_id: str) -> dict[str, str]:
        """Variables to set in this backend's isolation worker, started for pytest-xdist worker `worker_id`
        ("gw0", "gw1", ...; `qdq run -n N` names its K-th process gwK-1 too; empty in a single process): a GPU
        backend pins each worker to one device here."""
        return {}

    def repro(self, case: "Case") -> str | None:
        """A standalone script (no harness import) that rebuilds and runs the case with this backend's own API,
        for a bug report; None when the backend writes none."""
        return None

    @abc.abstractmethod
    def availability(self) -> Availability:
        """Whether it can run here, its version, and precisely why not."""

    def skip_reason(self, case: "Case") -> str | None:
        """A feature this backend lacks for this case (a skip, never a pass); None when it can run it."""
        return None

    @abc.abstractmethod
    def load(self, case: "Case") -> Runner:
        """Build the case. Raises QdqError for a refusal in the shared vocabulary."""


@dataclass(frozen=True)
class BrokenBackend:
    """An entry point that failed to import: listed as unavailable with the import error, never silently dropped."""

    name: str
    error: str
    product: str = "unknown"
    description: str = "entry point failed to load"
    isolated: bool = False
    timeout_s: float = 600.0
    models_contract: bool = False
    arithmetic: str = "simulated"

    def details(self) -> dict:
        return {}

    def configure(self, config) -> None:
        pass

    def repro(self, case) -> None:
        return None

    def availability(self) -> Availability:
        return Availability(False, None, f"entry point failed to load: {self.error}")


@lru_cache(maxsize=1)
def discover() -> dict[str, type[Backend] | BrokenBackend]:
    """Every backend registered in the entry-point group, by name, in a stable order."""
    found: dict[str, type[Backend] | BrokenBackend] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop the others
            found[ep.name] = BrokenBackend(ep.name, f"{type(exc).__name__}: {exc}")
    return found


@lru_cache(maxsize=None)
def instance(name: str) -> Backend | BrokenBackend:
    """One shared instance per backend name per process (backends keep caches, e.g. probes of valid twins),
    configured with the defaults until the run gives its own configuration (`Backend.configure`)."""
    from harness.engine.config import RunConfig

    entry = discover()[name]
    if isinstance(entry, BrokenBackend):
        return entry
    backend = entry()
    backend.configure(RunConfig.defaults())
    return backend


def contract_model() -> str | None:
    """The installed backend that models the documented contract (the default reference), or None."""
    found = [name for name, entry in discover().items() if getattr(entry, "models_contract", False)]
    return found[0] if len(found) == 1 else None


@lru_cache(maxsize=None)
def availability(name: str) -> Availability:
    backend = instance(name)
    try:
        return backend.availability()
    except Exception as exc:
        return Availability(False, None, f"availability check raised {type(exc).__name__}: {exc}")

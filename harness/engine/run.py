"""Where a backend runs: the one path from (case, backend, run configuration) to a record.

`Executor.run(case, backend)` applies the skip gates (unavailable, a version requirement, a feature the backend
lacks), executes in the pytest process (pure-Python backends, with the same timeout) or in an isolation worker
(everything else), judges the outcome (harness/engine/verdict.py) and stores the outputs in the bundle. Every record, crash
records included, is a `Record`; the cross-backend diff (harness/engine/crossdiff.py) reads records and stored outputs
only, after the backends' items ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from harness.engine import backend as backends_mod
from harness.results import bundle as bundle_mod
from harness.results.budget import OutputBudgetExceeded, disk_full
from harness.cases.case import Case
from harness.engine.config import RunConfig
from harness.engine.execute import Outcome, execute
from harness.engine.isolation import WorkerPool
from harness.engine.verdict import Verdict, judge, make
from harness.engine.watchdog import BackendTimeout, deadline

CROSS_BACKEND = "cross-backend"


@dataclass
class Record:
    """One (case, backend) result as the bundle keeps it, and everything the reports draw from."""

    nodeid: str
    case_id: str
    backend: str | None
    status: str
    kind: str
    reason: str
    expectation: str = ""
    override: str | None = None
    override_kind: str | None = None  # a declared deviation's kind: "semantics" or "bug"
    metrics: dict = field(default_factory=dict)
    backend_version: str | None = None
    seconds: float = 0.0
    skip_kind: str | None = None  # a skip's typed kind (harness/engine/skips.py)
    timings: dict | None = None  # seconds per phase: load (a TensorRT build or engine-cache read), activate, infer
    inputs_hash: str | None = None
    error: dict | None = None
    details: dict = field(default_factory=dict)
    outputs_file: str | None = None
    outputs_range: list | None = None  # [offset, length] in `outputs_file` when that is a process's pack
    outputs_hash: str | None = None  # `qdq compare` loads outputs only where these differ
    output_steps: dict | None = None  # each output's quantization step where it is one number (per-tensor)
    case: dict | None = None  # title, source, tags, file and hashes: folded into the bundle's `cases`
    diffs: list | None = None  # cross-backend records: every pair compared
    source: dict | None = None  # where the case file is (controller-side only; never written to the bundle)

    @classmethod
    def of(
        cls, nodeid: str, case: Case | None, case_id: str, backend: str | None, verdict: Verdict, **extra
    ) -> "Record":
        return cls(
            nodeid=nodeid,
            case_id=case_id,
            backend=backend,
            **verdict.as_dict(),
            case=case_meta(case) if case is not None else None,
            **extra,
        )

    @classmethod
    def crash(cls, nodeid: str, case_id: str, backend: str | None, message: str) -> "Record":
        """An item whose process died before it could record anything."""
        return cls.of(
            nodeid, None, case_id, backend, make("backend-crash", message[-2000:], metrics={"traceback": message})
        )

    def as_dict(self) -> dict:
        """Its fields as they are (no deep copy: a record is made once and written at once)."""
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {k: v for k, v in values if v is not None or k in ("backend", "override")}


def case_meta(case: Case) -> dict:
    root_parent = case.root.parent
    here = Path(case.file).absolute()
    return {
        "title": case.title,
        "source": case.source,
        "tags": case.tags,
        "severity": case.severity,
        "file": here.relative_to(root_parent).as_posix() if here.is_relative_to(root_parent) else case.file.name,
        "file_hash": case.file_hash,
        "content_hash": case.content_hash,
        "params": case.params,
    }


def output_steps(case: Case) -> dict[str, float | None]:
    """One quantization step per output where it is a single number (a quantized output: 1 code; a dequantize
    whose constant scale has one value: that scale), so a drift can be told in steps without the case file. Read
    off the compact scale: never a tensor the size of the output."""
    import numpy as np

    from harness.cases.network import NetworkInfo

    info, steps = NetworkInfo(case), {}
    for name in case.outputs:
        layer, step = info.layers.get(name), None  # None: an output of a whole model file, no layer of the case
        try:
            if layer is None:
                pass
            elif layer.op == "quantize":
                step = 1.0
            elif layer.op == "dequantize" and info.constant_root(layer.scale) is not None:
                values = np.unique(np.abs(info.constant_value(layer.scale).astype(np.float64)))
                step = float(values[0]) if values.size == 1 else None
        except Exception:  # a scale the backends refuse: no step to report
            step = None
        steps[name] = step
    return steps


class Executor:
    """Runs cases on backends for one pytest process: configured backends, their worker processes, the reference's
    outcomes (computed once per case in this process)."""

    def __init__(self, config: RunConfig, out_dir: Path | None):
        self.config = config
        self.out_dir = out_dir
        self.workers = WorkerPool(config)
        self.outputs = bundle_mod.OutputStore(out_dir) if out_dir else None
        self.references: dict[str, Outcome] = {}
        self._configured: set[str] = set()

    def backend(self, name: str):
        backend = backends_mod.instance(name)
        if name not in self._configured:
            backend.configure(self.config)
            self._configured.add(name)
        return backend

    def close(self) -> None:
        self.workers.close()
        if self.outputs is not None:
            self.outputs.close()

    # --- the one run path ---------------------------------------------------------------------------------------

    def run(self, case: Case, name: str) -> tuple[Verdict, str | None, Outcome | None, dict]:
        """The verdict, the backend's version, the outcome (None when skipped before running) and the record's
        extra fields (timing, inputs hash, refusal, details, outputs file)."""
        avail = backends_mod.availability(name)
        if not avail.available:
            return make("skipped", f"{name} unavailable: {avail.reason}", skip_kind=avail.kind), avail.version, None, {}
        requirement = case.unmet_requirement(name, avail.version)
        if requirement:
            return (
                make(
                    "skipped",
                    f"needs {name} {requirement.selector.version} (have {avail.version}): {requirement.reason}",
                    skip_kind="version",
                ),
                avail.version,
                None,
                {},
            )
        backend = self.backend(name)
        if backend.isolated:
            lacking, outcome = self.workers.run(name, backend, case)
        else:
            lacking, outcome = self._run_in_process(name, backend, case)
        if lacking:
            return make("skipped", lacking, skip_kind="feature-missing"), avail.version, None, {}
        verdict = judge(
            case,
            name,
            avail.version,
            outcome,
            reference=lambda: self.reference(case),
            reference_name=self.config.reference,
        )
        extra = {
            "seconds": round(outcome.seconds, 6),
            "timings": outcome.timings or None,
            "inputs_hash": bundle_mod.arrays_hash(outcome.inputs),
            "error": outcome.error.as_dict() if outcome.error else None,
            "details": outcome.details,
        }
        if outcome.outputs is not None:
            extra["outputs_hash"] = bundle_mod.arrays_hash(outcome.outputs)
            extra["output_steps"] = output_steps(case)
        if self.outputs is not None and outcome.outputs is not None:
            try:
                extra.update(self.outputs.save(case.id, name, outcome.outputs))
            except OutputBudgetExceeded as exc:  # this case's error; the rest runs
                verdict = make("output-not-stored", f"{exc}; the verdict would have been {verdict.status}")
            except OSError as exc:
                if not disk_full(exc):
                    raise
                verdict = make(
                    "output-not-stored",
                    f"disk full writing {self.out_dir}/outputs; the verdict would have been {verdict.status}",
                )
        return verdict, avail.version, outcome, extra

    def execute(self, name: str, case: Case) -> Outcome:
        backend = self.backend(name)
        if backend.isolated:
            return self.workers.execute(name, backend, case)
        start = time.perf_counter()
        try:
            with deadline(self.config.timeout_for(backend), f"{name} (in the pytest process) running {case.id}"):
                return execute(backend, case)
        except BackendTimeout as exc:
            return Outcome(crash=str(exc), seconds=time.perf_counter() - start)

    def _run_in_process(self, name: str, backend, case: Case) -> tuple[str | None, Outcome | None]:
        """A feature the backend lacks (asked first: an isolated backend answers with its run), else its outcome;
        both within one deadline."""
        start = time.perf_counter()
        try:
            with deadline(self.config.timeout_for(backend), f"{name} (in the pytest process) on {case.id}"):
                try:
                    lacking = backend.skip_reason(case)
                except Exception:
                    lacking = None  # its run meets (and reports) the same problem
                return lacking, None if lacking else execute(backend, case)
        except BackendTimeout as exc:
            return None, Outcome(crash=str(exc), seconds=time.perf_counter() - start)

    def reference(self, case: Case) -> Outcome:
        """The reference backend's outcome for a case (`expect: reference`), computed once per process."""
        if case.id not in self.references:
            self.references[case.id] = self.execute(self.config.reference, case)
        return self.references[case.id]

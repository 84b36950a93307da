"""Running one case on one backend: load (build), make the inputs, activate, infer. Never raises: every result,
refusal or crash comes back as an `Outcome` for the verdict."""

from __future__ import annotations

import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from harness.cases import data as data_mod
from harness.engine.backend import Backend
from harness.cases.case import Case
from harness.cases.errors import BuiltNotRun, QdqError


@dataclass
class Outcome:
    outputs: dict[str, np.ndarray] | None = None
    error: QdqError | None = None
    crash: str | None = None  # traceback of an exception that is not a QdqError: a bug or a backend crash
    skip: str | None = None  # the harness could not feed this backend (e.g. inputs too large to materialise)
    built_not_run: str | None = None  # built for real, not run (no GPU): a build verdict, values unknown
    skip_kind: str | None = None  # the kind of `skip` or `built_not_run` (harness/engine/skips.py)
    details: dict = field(
        default_factory=dict
    )  # what the runner reports: ONNX opset, TensorRT typing, layer precisions
    artifacts: dict[str, bytes] = field(default_factory=dict)  # files the runner built (model.onnx), for the report
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase reached: load (a TensorRT build or
    # engine-cache read), activate, infer; a phase that raised has its time up to the error


def make_inputs(case: Case) -> dict[str, np.ndarray]:
    feeds = {}
    for layer in case.network:
        if layer.op == "input":
            feeds[layer.name] = data_mod.materialise(
                case.inputs[layer.name], tuple(layer.shape), layer.output_type, case.file, case.root
            )
    return feeds


def execute(backend: Backend, case: Case) -> Outcome:
    outcome = Outcome()
    start = time.perf_counter()
    clock = _PhaseClock(outcome.timings)
    runner = None
    try:
        with clock("load"):
            runner = backend.load(case)
        with ExitStack() as active:
            with clock("activate"):
                active.enter_context(runner)  # first: a backend that cannot run (no GPU) says so before inputs are made
            outcome.inputs = make_inputs(case)
            with clock("infer"):
                outcome.outputs = runner.infer(outcome.inputs)
    except QdqError as exc:
        outcome.error = exc
    except BuiltNotRun as exc:
        outcome.built_not_run, outcome.skip_kind = exc.reason, exc.kind
    except data_mod.DataError as exc:
        outcome.skip, outcome.skip_kind = f"inputs not materialised: {exc}", "data-limit"
    except Exception:
        outcome.crash = traceback.format_exc()
    if runner is not None:
        outcome.details = dict(runner.details)
        outcome.artifacts = dict(runner.artifacts)
    outcome.seconds = time.perf_counter() - start
    return outcome


class _PhaseClock:
    """`with clock("load"):` adds the block's seconds to timings["load"], also when it raises."""

    def __init__(self, timings: dict[str, float]):
        self.timings, self.phase, self.start = timings, "", 0.0

    def __call__(self, phase: str) -> "_PhaseClock":
        self.phase = phase
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> bool:
        self.timings[self.phase] = round(time.perf_counter() - self.start, 6)
        return False

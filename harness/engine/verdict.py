"""Where a verdict is made: one backend's outcome on one case, judged against the expectation that holds there.

Statuses: pass | fail | xfail | skip | error.
- xfail is a *declared* deviation that was observed: an `overrides:` entry for this backend (and version) whose
  expectation held, or a `documented:` value that differs from the contract as the case says it does.
- A declared deviation that stops happening fails ("deviation no longer observed"), like a strict xfail.
- error is a crash of the backend or the harness (not a refusal in the shared vocabulary).
Every non-pass verdict has a `kind` from KINDS; messages start with its stable prefix so reports can group them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from harness.cases import data as data_mod
from harness.cases import dtypes
from harness.cases.case import Case, Expectation
from harness.engine.compare import Comparison, compare
from harness.engine.execute import Outcome
from harness.engine.backend import contract_model
from harness.cases.network import NetworkInfo

# kind -> (status, message prefix, what it means). One place: the reports and their categories read this too.
KINDS: dict[str, tuple[str, str, str]] = {
    "pass": ("pass", "PASS", "the expectation held"),
    "numeric-mismatch": ("fail", "NUMERIC-MISMATCH", "outputs differ from the expected values beyond the tolerance"),
    "unexpected-error": ("fail", "UNEXPECTED-ERROR", "the backend refused a case that expects values"),
    "missing-expected-error": ("fail", "MISSING-EXPECTED-ERROR", "the backend ran a case that expects an error"),
    "wrong-error": ("fail", "WRONG-ERROR", "the backend refused the case with another category or message"),
    "deviation-no-longer-observed": ("fail", "DEVIATION-NO-LONGER-OBSERVED", "a declared deviation did not happen"),
    "cross-backend-disagreement": (
        "fail",
        "CROSS-BACKEND-DISAGREEMENT",
        "two backends disagree beyond the tolerance, undeclared",
    ),
    "declared-deviation": ("xfail", "DECLARED-DEVIATION", "the backend deviates as the case declares"),
    "documentation-deviation": (
        "xfail",
        "DOCUMENTATION-DEVIATION",
        "the contract's values differ from a document's printed ones",
    ),
    "ran-unquantized": (
        "fail",
        "RAN-UNQUANTIZED",
        "a layer the case expects in INT8/FP8 ran (or, built without a GPU, would run) in float",
    ),
    "backend-crash": ("error", "BACKEND-CRASH", "the backend or the harness crashed"),
    "output-not-stored": (
        "error",
        "OUTPUT-NOT-STORED",
        "the outputs could not be stored: the run's output budget is spent, or the disk is full",
    ),
    "invalid-case-file": ("fail", "INVALID-CASE-FILE", "the case file does not load"),
    "skipped": ("skip", "SKIPPED", "the backend cannot run this case here"),
}


@dataclass
class Verdict:
    status: str
    kind: str
    reason: str
    expectation: str = ""
    override: str | None = None
    metrics: dict = field(default_factory=dict)
    override_kind: str | None = None  # the declared deviation's kind: "semantics" or "bug"
    skip_kind: str | None = None  # a skip's typed kind (harness/engine/skips.py), given by the backend or the gate

    @property
    def message(self) -> str:
        return f"{KINDS[self.kind][1]}: {self.reason}"

    def as_dict(self) -> dict:
        out = {
            "status": self.status,
            "kind": self.kind,
            "reason": self.reason,
            "expectation": self.expectation,
            "override": self.override,
            "metrics": self.metrics,
        }
        if self.override is not None:
            out["override_kind"] = self.override_kind or "semantics"
        if self.status == "skip":
            out["skip_kind"] = self.skip_kind or "other"
        return out


def make(kind: str, reason: str, **kw) -> Verdict:
    return Verdict(KINDS[kind][0], kind, reason, **kw)


@dataclass
class _Check:
    ok: bool
    kind: str = "pass"
    detail: str = ""
    metrics: dict = field(default_factory=dict)


def expected_arrays(case: Case, values: dict, info: NetworkInfo) -> dict[str, np.ndarray]:
    """Expected data in each output's own type: an exact expectation means bit-exact in that type."""
    out = {}
    for name, spec in values.items():
        out[name] = data_mod.materialise(
            spec, info.shapes[name], dtypes.dtype(info.dtype(name)).name, case.file, case.root
        )
    return out


def _compare_values(case: Case, info: NetworkInfo, outputs: dict, values: dict, tolerance) -> _Check:
    return _compare(case, info, outputs, expected_arrays(case, values, info), tolerance)


def _compare(case: Case, info: NetworkInfo, outputs: dict, expected: dict, tolerance, against: str = "") -> _Check:
    """Each expected output against the backend's, within the tolerance (steps of the output's own scale)."""
    metrics, failures = {}, []
    for name, exp in expected.items():
        if name not in outputs:
            return _Check(False, "numeric-mismatch", f"output {name!r} is missing")
        step = info.step(name) if tolerance.kind == "steps" else None
        c: Comparison = compare(outputs[name], exp, tolerance, step)
        metrics[name] = c.as_dict()
        if not c.ok:
            failures.append(f"{name}: {c.summary()}{against}")
    if failures:
        return _Check(False, "numeric-mismatch", "; ".join(failures), metrics)
    return _Check(True, metrics=metrics)


def _satisfies(
    expect: Expectation,
    outcome: Outcome,
    case: Case,
    info: NetworkInfo,
    backend: str,
    reference: Callable[[], Outcome] | None,
    reference_name: str | None = None,
) -> _Check:
    if expect.kind == "observe":
        if outcome.error is not None:  # no expectation, but a refusal is said, never passed over
            return _Check(
                True, detail=f"observed (no expectation): refused, {outcome.error.category}: {outcome.error.native}"
            )
        return _Check(True, detail="observed (no expectation)")
    if expect.kind == "error":
        if outcome.error is None:
            return _Check(False, "missing-expected-error", f"expected error {expect.category}, but it built and ran")
        err = outcome.error
        if err.category != expect.category:
            return _Check(False, "wrong-error", f"expected {expect.category}, got {err.category}: {err.native}")
        if expect.message and not re.search(expect.message, err.native):
            return _Check(
                False,
                "wrong-error",
                f"{err.category} as expected, but the message does not match /{expect.message}/: {err.native}",
            )
        return _Check(True, detail=f"{err.category}: {err.native}")
    if expect.kind == "reference":
        if reference is None or backend == (reference_name or contract_model()):
            if outcome.error is not None:
                return _Check(True, detail=f"the reference refuses it: {outcome.error.category}")
            return _Check(True, detail="this is the reference")
        ref = reference()
        if ref.crash or ref.skip:
            return _Check(
                False, "backend-crash", f"the reference ({reference_name}) could not run: {ref.crash or ref.skip}"
            )
        if ref.error is not None:
            return _satisfies(Expectation("error", category=ref.error.category), outcome, case, info, backend, None)
        if outcome.error is not None:
            return _Check(False, "unexpected-error", f"{outcome.error.category}: {outcome.error.native}")
        return _compare(
            case, info, outcome.outputs, ref.outputs, expect.tolerance, f" (against the reference, {reference_name})"
        )
    # values
    if outcome.error is not None:
        return _Check(False, "unexpected-error", f"{outcome.error.category}: {outcome.error.native}")
    return _compare_values(case, info, outcome.outputs, expect.values, expect.tolerance)


def judge(
    case: Case,
    backend: str,
    version: str | None,
    outcome: Outcome,
    reference: Callable[[], Outcome] | None = None,
    reference_name: str | None = None,
) -> Verdict:
    verdict = _judge(case, backend, version, outcome, reference, reference_name)
    layer_types = outcome.details.get("layer_types")
    if not case.runs_quantized or not layer_types:
        return verdict
    engine_layers = outcome.details.get("engine_layers", [])
    if verdict.status == "pass":
        problem = unquantized(case.runs_quantized, layer_types, engine_layers)
        if problem:
            return make("ran-unquantized", problem, metrics=verdict.metrics)
    elif verdict.status == "skip" and outcome.built_not_run:
        # Built, not run (no GPU): the engine's layers as the builder reports them still say whether it would run
        # quantized. Only layers the report names are judged: one it does not name is not taken as float.
        named = [name for name in case.runs_quantized if name in layer_types]
        source = outcome.details.get("layers_source", "the engine's layers")
        problem = unquantized(named, layer_types, engine_layers) if named else None
        if problem:
            return make(
                "ran-unquantized",
                f"as built ({source}): {problem}; not run (no GPU): the values are unchecked",
                expectation=verdict.expectation,
                override=verdict.override,
                override_kind=verdict.override_kind,
            )
        found = ", ".join(f"{n} on {'/'.join(layer_types[n])}" for n in named) or "none of the layers named"
        return replace(verdict, reason=f"{verdict.reason}; runs quantized as built ({source}): {found}")
    return verdict


def unquantized(names: list[str], layer_types: dict[str, list[str]], engine_layers: list[str]) -> str | None:
    """Which of the case's layers a backend ran in no quantized type, from what it reports (`layer_types`: network
    layer -> the harness type names of the inputs of the engine layers that run it; `engine_layers`: their names).
    A silent float fallback gives the same values; this sees it."""
    problems = []
    for name in names:
        types = layer_types.get(name)
        if types is None:
            problems.append(f"{name!r} is in no engine layer (engine layers: {', '.join(engine_layers)[:300]})")
            continue
        if not any(t in dtypes.NAMES and dtypes.dtype(t).quantized for t in types):
            problems.append(f"{name!r} runs with inputs {types}: no INT8/FP8/INT4/FP4")
    return "; ".join(problems) or None


def _judge(
    case: Case,
    backend: str,
    version: str | None,
    outcome: Outcome,
    reference: Callable[[], Outcome] | None = None,
    reference_name: str | None = None,
) -> Verdict:
    if outcome.skip:
        return make("skipped", outcome.skip, skip_kind=outcome.skip_kind or "other")
    if outcome.crash:
        return make(
            "backend-crash",
            outcome.crash.strip().splitlines()[-1] if outcome.crash.strip() else "crashed",
            metrics={"traceback": outcome.crash},
        )
    expect, override = case.expectation_for(backend, version)
    if outcome.built_not_run:
        kind = "unsupported-gpu" if outcome.skip_kind == "unsupported-gpu" else "built-not-run"
        own = _refusal_of_reference(case.expect, backend, reference, reference_name)
        expect = _refusal_of_reference(expect, backend, reference, reference_name)
        return _judge_build_only(case, expect, override, outcome.built_not_run, kind, own.kind == "error")
    info = NetworkInfo(case)
    documented = case.documented if case.documented and case.documented.applies(backend, version) else None
    primary = _satisfies(case.expect, outcome, case, info, backend, reference, reference_name)
    described = {"expectation": expect.describe()}

    if override is not None:
        described["override"] = override.reason
        described["override_kind"] = override.kind
        if primary.ok:
            return make(
                "deviation-no-longer-observed",
                f"declared deviation not observed: the case's own expectation ({case.expect.describe()}) holds; "
                f"declared: {override.reason}",
                metrics=primary.metrics,
                **described,
            )
        held = _satisfies(expect, outcome, case, info, backend, reference, reference_name)
        if held.ok:
            return make(
                "declared-deviation",
                f"{override.reason} [{case.expect.describe()} does not hold: {primary.detail}]",
                metrics=held.metrics,
                **described,
            )
        return make(
            held.kind,
            f"{held.detail} (expectation of the override: {override.reason})",
            metrics=held.metrics,
            **described,
        )

    if not primary.ok:
        note = ""
        if documented and outcome.outputs is not None:
            doc = _compare_values(case, info, outcome.outputs, documented.values, documented.tolerance)
            if doc.ok:
                note = " (it matches the document's printed values instead)"
        return make(primary.kind, primary.detail + note, metrics=primary.metrics, **described)

    if documented and outcome.outputs is not None:
        doc = _compare_values(case, info, outcome.outputs, documented.values, documented.tolerance)
        if doc.ok:
            return make(
                "deviation-no-longer-observed",
                f"the output matches the document's printed values as well as the contract: "
                f"the declared documentation deviation is gone ({documented.reason})",
                metrics=primary.metrics,
                **described,
            )
        return make(
            "documentation-deviation",
            f"{documented.reason} [{doc.detail}]",
            metrics={"expected": primary.metrics, "documented": doc.metrics},
            **described,
        )
    return make("pass", primary.detail or "as expected", metrics=primary.metrics, **described)


def _refusal_of_reference(
    expect: Expectation, backend: str, reference: Callable[[], Outcome] | None, reference_name: str | None
) -> Expectation:
    """`reference` where the reference refuses the case is that refusal: an error a build can be judged against."""
    if expect.kind != "reference" or reference is None or backend == (reference_name or contract_model()):
        return expect
    ref = reference()
    return Expectation("error", category=ref.error.category) if ref.error is not None else expect


def _judge_build_only(
    case: Case, expect: Expectation, override, built: str, skip_kind: str, own_is_error: bool = False
) -> Verdict:
    """A real build that could not be run (no GPU): it proves an expected error did not happen, nothing more.
    `own_is_error`: the case's own expectation is an error (written, or the reference's refusal)."""
    described = {"expectation": expect.describe(), "override": override.reason if override else None}
    if override is not None:
        described["override_kind"] = override.kind
    if expect.kind == "error":
        return make(
            "missing-expected-error", f"expected error {expect.category}, but the build succeeded: {built}", **described
        )
    if override is not None and (own_is_error or case.expect.kind == "error") and expect.kind == "observe":
        return make("declared-deviation", f"{override.reason} [it builds: {built}]", **described)
    return make("skipped", built, skip_kind=skip_kind, **described)

"""The cross-backend diff: every pair of backends that produced outputs for a case, compared element by element.

A pair passes when it agrees within the case's tolerance (exact unless the case gives one), or when the case
declares the disagreement: an `overrides:` entry holds for either backend (its reason is quoted). Anything else
fails the case's cross-backend item. Each differing element is classified by the quantize input behind it:
`tie` when x/s is exactly halfway between two codes, `near-tie` when float32 division and TensorRT's reciprocal
product round it to different codes (or it lies within 2^-20 of halfway).
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np

from harness.cases.case import Case, Tolerance
from harness.engine.compare import compare
from harness.cases.errors import QdqError
from harness.engine.execute import Outcome
from harness.cases.network import GranularityError, NetworkInfo
from harness.engine.verdict import Verdict, make

NEAR_TIE = Fraction(1, 2**20)
FUSABLE = ("conv", "matmul")  # layers a TensorRT engine runs as one kernel with the Q/DQ around them


def arithmetic(backend: str) -> str:
    """A backend's declared arithmetic ("simulated" or "fused"), read from its class; unknown names simulate."""
    from harness.engine.backend import discover

    return getattr(discover().get(backend), "arithmetic", "simulated")


def tie_class(x: float, s: float) -> str | None:
    """Whether quantizing x with scale s sits on a rounding tie ('tie'), close to one ('near-tie'), or neither."""
    if not (np.isfinite(x) and np.isfinite(s)) or s == 0:
        return None
    exact = Fraction(float(x)) / Fraction(float(s))
    distance = abs(exact - exact.__floor__() - Fraction(1, 2))
    if distance == 0:
        return "tie"
    x32, s32 = np.float32(x), np.float32(s)
    with np.errstate(all="ignore"):
        by_division = np.rint(x32 / s32)
        by_reciprocal = np.rint(x32 * (np.float32(1) / s32))
    if by_division != by_reciprocal or distance < NEAR_TIE:
        return "near-tie"
    return None


def _quantize_context(case: Case, info: NetworkInfo, output: str, inputs: dict[str, np.ndarray]):
    """(x, scale) arrays behind an output, when it is DQ(Q(x)) or Q(x) of a tensor whose values are known."""
    layer = info.layers.get(output)
    if layer is None:  # an output of a whole model file: no layer of the case behind it
        return None
    if layer.op == "dequantize":
        layer = info.layers[layer.input]
    if layer.op != "quantize":
        return None
    source = info.layers[layer.input]
    try:
        if source.op == "input":
            x = inputs.get(source.name)
        elif info.constant_root(source.name) is not None:
            x = info.constant_value(source.name)
        else:
            return None
        if x is None or info.constant_root(layer.scale) is None:
            return None
        scale = info.scale_granularity(layer).expand(info.constant_value(layer.scale), info.shapes[layer.input])
    except (GranularityError, ValueError):
        return None
    return np.asarray(x, dtype=np.float64), np.asarray(scale, dtype=np.float64)


def pair_diff(
    case: Case, info: NetworkInfo, a: str, b: str, out_a: dict, out_b: dict, inputs: dict, tolerance: Tolerance
) -> list[dict]:
    diffs = []
    for output in case.outputs:
        if output not in out_a or output not in out_b:
            continue
        step = info.step(output)
        tol = tolerance if (tolerance.kind != "steps" or step is not None) else Tolerance("exact")
        c = compare(out_b[output], out_a[output], tol, step)
        context = _quantize_context(case, info, output, inputs)
        first = []
        for entry in c.first:
            idx = tuple(entry["index"])
            row = {
                "index": list(idx),
                a: entry["expected"],
                b: entry["got"],
                "abs": entry["abs"],
                "steps": entry["steps"],
            }
            if context is not None and context[0].shape == np.shape(out_a[output]):
                x, s = context[0][idx], context[1][idx]
                row.update(input=float(x), scale=float(s), rounding=tie_class(x, s))
            first.append(row)
        diffs.append(
            {
                "case_id": case.id,
                "output": output,
                "backends": [a, b],
                "agree": c.ok,
                "tolerance": tol.describe(),
                "max_abs": c.max_abs,
                "max_rel": c.max_rel,
                "max_steps": c.max_steps,
                "differing": c.mismatched,
                "total": c.total,
                "share": (c.mismatched / c.total) if c.total else 0.0,
                "first": first,
                "shape_mismatch": c.shape_mismatch,
            }
        )
    return diffs


def cross_backend_verdict(case: Case, outcomes: dict[str, tuple[str | None, Outcome]]) -> tuple[Verdict, list[dict]]:
    produced = {name: (version, o) for name, (version, o) in outcomes.items() if o.outputs is not None}
    if len(produced) < 2:
        others = (
            ", ".join(
                f"{n}: {'refused' if o.error else 'crashed' if o.crash else 'no outputs'}"
                for n, (_, o) in outcomes.items()
                if n not in produced
            )
            or "none ran"
        )
        return make("skipped", f"fewer than two backends produced outputs ({others})", skip_kind="fewer-backends"), []
    info = NetworkInfo(case)
    tolerance = case.expect.tolerance if case.expect.kind in ("values", "reference") else Tolerance("exact")
    fusable = any(layer.op in FUSABLE for layer in case.network)
    diffs, undeclared, declared, labelled = [], [], [], []
    for a, b in itertools.combinations(sorted(produced), 2):
        (va, oa), (vb, ob) = produced[a], produced[b]
        inputs = oa.inputs or ob.inputs
        fused_vs_simulated = fusable and len({arithmetic(a), arithmetic(b)}) == 2
        reasons = [o.reason for name, v in ((a, va), (b, vb)) for _, o in [case.expectation_for(name, v)] if o]
        whole = whole_model_pair(case, a, b, oa, ob) if case.model is not None else None
        if whole is not None and whole[0]:  # the first Q/DQ tensor where they part: the pair's disagreement
            (declared if reasons else undeclared).append(
                f"{a} vs {b}: {whole[0]}" + (f" [declared: {reasons[0]}]" if reasons else "")
            )
        elif whole is not None:
            labelled.append(f"{a} vs {b}: {whole[1]}")  # what the Q/DQ tensors show, said even when all agree
        for d in pair_diff(case, info, a, b, oa.outputs, ob.outputs, inputs, tolerance):
            d["declared"] = reasons
            d["fused_vs_simulated"] = fused_vs_simulated
            diffs.append(d)
            if d["agree"]:
                continue
            text = (
                f"{a} vs {b} on {d['output']}: {d['shape_mismatch'] or ''}{d['differing']}/{d['total']} differ, "
                f"max |diff| {d['max_abs']:.6g}"
                + (
                    f" ({d['max_steps']:g} step{'s' if d['max_steps'] != 1 else ''})"
                    if d["max_steps"] is not None
                    else ""
                )
            )
            if fused_vs_simulated and not d["shape_mismatch"]:
                # By design, not a bug of either: labelled with its size, never hidden, never a failure by itself.
                labelled.append(f"fused vs simulated: {text}")
                continue
            if whole is not None and not d["shape_mismatch"]:
                # A whole model's outputs follow from its Q/DQ tensors (judged above) and float operators that are
                # not ours to judge: labelled, never a failure by themselves.
                labelled.append(f"outputs: {text}")
                continue
            (declared if reasons else undeclared).append(text + (f" [declared: {reasons[0]}]" if reasons else ""))
    if undeclared:
        return make("cross-backend-disagreement", "; ".join(undeclared + labelled)), diffs
    summary = f"{len(produced)} backends, {len(diffs)} comparison{'s' if len(diffs) != 1 else ''}"
    if labelled:
        summary += "; " + "; ".join(labelled)
    if declared:
        return make("pass", f"{summary}; declared disagreements: " + "; ".join(declared)), diffs
    return make("pass", summary if labelled else f"{summary}, all agree"), diffs


def whole_model_pair(case: Case, a: str, b: str, oa: Outcome, ob: Outcome) -> tuple[str | None, str]:
    """For a whole model: (why the pair parts, or None; what its Q/DQ tensors show), from the probes both runners
    report (harness/engine/probes.py); without probes on both sides the outputs cannot be told apart from float
    arithmetic, and the pair is only described."""
    from harness.engine import probes

    common = probes.common_probes(oa, ob)
    if common is None:
        missing = [n for n, o in ((a, oa), (b, ob)) if not (o.details or {}).get("probes")]
        return None, f"not localised: {', '.join(missing)} reports no intermediate tensors"
    first, text = probes.describe(probes.compare(oa.outputs, ob.outputs, common))
    return (text if first else None), text


def stored_outcome(record: dict, out_dir: Path, read: dict | None = None) -> Outcome:
    """A backend's outcome as its record and stored outputs tell it: what the diff reads, never process state.
    `read`: outputs already read, by `outputs_hash` (names, types, shapes and bytes: equal hashes, equal tensors, as
    `qdq compare` also takes them), so that identical outputs of several backends are read from disk once."""
    outputs = None
    if record.get("outputs_file"):
        from harness.results.bundle import record_outputs

        known = record.get("outputs_hash")
        outputs = read.get(known) if read is not None and known else None
        if outputs is None:
            outputs = record_outputs(out_dir, record)
            if read is not None and known:
                read[known] = outputs
    err = record.get("error")
    return Outcome(
        outputs=outputs,
        error=QdqError(err["category"], err["message"], native=err["native"], phase=err["phase"]) if err else None,
        crash=record.get("reason") if record["status"] == "error" else None,
        skip=record.get("reason") if record["status"] == "skip" and outputs is None else None,
        details=record.get("details") if isinstance(record.get("details"), dict) else {},
    )


def stored_cross_backend(
    records: list[dict],
    sources: dict[str, tuple[str, str]],
    out_dir: Path,
    backends: list[str],
    parse_cache=None,
    on_record=None,
) -> list[dict]:
    """Every case's cross-backend record, from the backends' records and the outputs they stored, after all of
    them ran (Polygraphy's run -> results -> compare); `on_record(case, record, outcomes, verdict)` is called for
    each, for a reporter. Cases are read again from their files (once per file, through
    the parse cache when given: the workers that collected them kept them there)."""
    from harness.cases.load import check_file
    from harness.engine.execute import make_inputs
    from harness.engine.run import CROSS_BACKEND, Record

    by_case: dict[str, list[dict]] = {}
    for r in records:
        if r.get("backend") in backends and r.get("case_id") in sources:
            by_case.setdefault(r["case_id"], []).append(r)
    files: dict[tuple[str, str], dict] = {}
    out = []
    for case_id, recs in sorted(by_case.items()):
        path, root = sources[case_id]
        if (path, root) not in files:
            loaded, _ = check_file(Path(path), Path(root), parse_cache)
            files[(path, root)] = {c.id: c for c in loaded}
        case = files[(path, root)].get(case_id)
        if case is None:
            continue
        read: dict[str, dict] = {}  # outputs by their hash: backends that agree to the bit are read once
        outcomes = {
            r["backend"]: (r.get("backend_version"), stored_outcome(r, out_dir, read))
            for r in sorted(recs, key=lambda r: r["backend"])
        }
        if sum(o.outputs is not None for _, o in outcomes.values()) >= 2:
            inputs = make_inputs(case)  # the tie classes need the inputs behind each differing element
            for _, o in outcomes.values():
                o.inputs = inputs
        try:
            verdict, diffs = cross_backend_verdict(case, outcomes)
        except Exception:  # a bug here costs this case's comparison, never the other cases' or the bundle
            import traceback

            verdict, diffs = make("backend-crash", f"the cross-backend diff failed: {traceback.format_exc()}"), []
        nodeid = recs[0]["nodeid"].rsplit("[", 1)[0] + f"[{CROSS_BACKEND}]"
        record = Record.of(nodeid, case, case_id, CROSS_BACKEND, verdict, diffs=diffs).as_dict()
        out.append(record)
        if on_record is not None:  # the reporter's hook: this module returns data and writes no report
            on_record(case, record, outcomes, verdict)
    return out

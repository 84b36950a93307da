"""Allure results and reports: labels and attachments on every item, the report-level files, the HTML report.

- Each item gets labels a person can group by (epic = source document, feature = case family, story = case id,
  tags, severity, backend) and attachments (the case YAML, inputs and outputs as small CSV tables, the repro script;
  on a mismatch or disagreement the diff table and a heatmap PNG).
- Versions are parameters excluded from the history id, so a test's history survives upgrades.
- The failure categories come from harness/engine/verdict.py's KINDS, the one place, into both `categories.json`
  (Allure 2 / classic) and the Allure 3 config (its default report ignores categories.json).
- The HTML: Allure 3 (npm `allure`, pinned in package.json, no Java), single file, history in a JSONL file,
  the analytics tag stripped so the page makes no external request.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from pathlib import Path

import numpy as np


REPO = Path(__file__).resolve().parents[2]
SMALL = 256  # tensors up to this many elements are attached as full CSV tables
MAX_ATTACHMENT = 1 << 20  # characters or bytes of one attachment (a repro script with data inline, a model)

# Allure statuses our verdict statuses become. pytest reports a declared deviation as xfail, which allure-pytest
# writes as "skipped"; `mark_declared_deviations` makes it "unknown" so a known deviation never looks like a
# backend that did not run (Allure shows "unknown" as its own colour, and the categories name it).
_ALLURE_STATUS = {"fail": "failed", "error": "broken", "xfail": "unknown", "skip": "skipped"}


# --- per item ---------------------------------------------------------------------------------------------------


def allure_module():
    try:
        import allure

        return allure
    except ImportError:
        return None


def labels(case, backend: str) -> list[tuple[str, str]]:
    """What a person groups results by: source document (epic), case family (feature), case (story), tags,
    severity and backend; the same for items written by allure-pytest and for those the harness writes itself."""
    out = [("epic", case.source.get("document", "unknown")), ("feature", case.id.split("/")[0]), ("story", case.id)]
    out += [("tag", tag) for tag in case.tags]
    out += [("severity", case.severity if case.severity in _SEVERITIES else "normal"), ("backend", backend)]
    return out


_SEVERITIES = ("blocker", "critical", "normal", "minor", "trivial")


def label_item(case, backend: str, version: str | None) -> None:
    allure = allure_module()
    if allure is None:
        return
    allure.dynamic.title(f"{case.title} [{backend}]")
    for name, value in labels(case, backend):
        allure.dynamic.label(name, value)
    allure.dynamic.label("version", f"{backend} {version or '-'}")  # the per-backend report groups by it
    allure.dynamic.parameter("backend", backend)
    allure.dynamic.parameter("backend version", version or "-", excluded=True)  # history continues across upgrades
    if case.source.get("link"):
        allure.dynamic.link(case.source["link"], name="source")


def write_cross_backend_result(alluredir: Path, case, record: dict, outcomes: dict, verdict) -> None:
    """The cross-backend result, written by the harness (it is made after the items, from stored outputs): the
    same labels as every item, the disagreements described even inside a pass, and for each differing pair its
    table and heatmap."""
    alluredir = Path(alluredir)
    alluredir.mkdir(parents=True, exist_ok=True)
    attachments = []

    def attach(name: str, data: bytes, mime: str, ext: str) -> None:
        source = f"{uuid.uuid4()}-attachment.{ext}"
        (alluredir / source).write_bytes(data)
        attachments.append({"name": name, "source": source, "type": mime})

    attach(case.file.name, case_section(case).encode(), "application/yaml", "yaml")
    differing = [d for d in record.get("diffs") or [] if not d["agree"] and not d["shape_mismatch"]]
    for d in differing:
        a, b = d["backends"]
        got, want = outcomes[b][1].outputs[d["output"]], outcomes[a][1].outputs[d["output"]]
        label = f"{d['output']} ({a} vs {b})"
        attach(f"{label} differences.csv", difference_table(d["first"], b, a).encode(), "text/csv", "csv")
        g, e = np.asarray(got).astype(np.float64), np.asarray(want).astype(np.float64)
        with np.errstate(invalid="ignore"):
            diff = np.nan_to_num(np.where((g == e) | (np.isnan(g) & np.isnan(e)), 0.0, np.abs(g - e)), nan=np.inf)
        attach(f"{label} heatmap", heatmap(diff, f"|{b} - {a}| of {d['output']}"), "image/png", "png")
    description = "\n".join(
        f"- {d['backends'][0]} vs {d['backends'][1]} on `{d['output']}`: {d['differing']} of {d['total']} "
        f"element{'s' if d['total'] != 1 else ''} differ, max |diff| {d['max_abs']:.6g}"
        + (f" ({d['max_steps']:g} steps)" if d["max_steps"] is not None else "")
        + (f"; declared: {d['declared'][0]}" if d.get("declared") else "; UNDECLARED")
        for d in differing
    )
    tags = [("tag", "declared disagreements")] if differing and record["status"] == "pass" else []
    status = {"pass": "passed", "fail": "failed", "error": "broken", "skip": "skipped"}[record["status"]]
    now = int(time.time() * 1000)
    nodeid = record["nodeid"]
    result = {
        "uuid": str(uuid.uuid4()),
        "historyId": uuid.uuid5(uuid.NAMESPACE_URL, nodeid).hex,
        "testCaseId": uuid.uuid5(uuid.NAMESPACE_URL, "case:" + nodeid).hex,
        "name": f"{case.title} [cross-backend]",
        "fullName": nodeid,
        "status": status,
        "statusDetails": {"message": verdict.message if record["status"] != "pass" else verdict.reason},
        "description": description or None,
        "start": now,
        "stop": now,
        "labels": [{"name": n, "value": v} for n, v in labels(case, "cross-backend") + tags],
        "parameters": [
            {"name": "backend", "value": "cross-backend"},
            {"name": "backend version", "value": "-", "excluded": True},
        ],
        "links": [{"type": "link", "url": case.source["link"], "name": "source"}] if case.source.get("link") else [],
        "attachments": attachments,
    }
    (alluredir / f"{result['uuid']}-result.json").write_text(json.dumps(result))


def _csv(arrays: dict[str, np.ndarray]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["tensor", "index", "value"])
    for name, a in arrays.items():
        a = np.asarray(a)
        flat = a.astype(np.float64).reshape(-1)
        for i, idx in enumerate(np.ndindex(a.shape or (1,))):
            w.writerow([name, list(idx), repr(float(flat[i]))])
    return buf.getvalue()


def _summary(arrays: dict[str, np.ndarray]) -> str:
    lines = []
    for name, a in arrays.items():
        a = np.asarray(a)
        # numpy's own types are summarised as they are (no float64 copy of a large tensor); ml_dtypes via float32
        f = a if a.dtype.type.__module__ == "numpy" else a.astype(np.float32)
        if f.size == 0:
            lines.append(f"{name}: {a.dtype} {list(a.shape)}, empty")
            continue
        isnan = np.isnan(f) if f.dtype.kind == "f" else np.zeros(1, bool)
        with np.errstate(all="ignore"):
            if not isnan.any():  # the usual case: plain reductions, no NaN-free copy of a large tensor
                low, high, mean = f.min(), f.max(), f.mean(dtype=np.float64)
            elif isnan.all():
                low = high = mean = np.nan
            else:
                low, high, mean = np.nanmin(f), np.nanmax(f), np.nanmean(f, dtype=np.float64)
        lines.append(
            f"{name}: {a.dtype} {list(a.shape)}, min {float(low):.6g}, max {float(high):.6g}, "
            f"mean {float(mean):.6g}, NaN {int(isnan.sum())}"
        )
    return "\n".join(lines)


def attach_tensors(label: str, arrays: dict[str, np.ndarray]) -> None:
    allure = allure_module()
    if allure is None or not arrays:
        return
    if all(np.asarray(a).size <= SMALL for a in arrays.values()):
        allure.attach(_csv(arrays), name=f"{label}.csv", attachment_type=allure.attachment_type.CSV)
    else:
        allure.attach(_summary(arrays), name=f"{label} (summary)", attachment_type=allure.attachment_type.TEXT)


def case_section(case) -> str:
    """The case as it ran (its own entry of the file, matrix parameters filled in), not the whole file: a matrix
    file attached whole to each of its cases cost gigabytes."""
    import yaml

    return f"# {case.id}, from {case.file.name} (line {case.line})\n" + yaml.safe_dump(
        case.raw, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120
    )


LOOK_AT = ("fail", "error", "xfail")  # where a person looks: everything is attached there


def attach_case(case, backend: str, outcome, verdict, version: str | None = None) -> None:
    """A pass or skip: its case file and line, a summary of its tensors and any refusal, in the description (no
    attachment files). Where a person will look (a failure, a crash, a declared deviation): the case as it ran, the
    tensors as tables, the refusal, the metrics, the repro script, the backend's artifacts (the model it ran) and,
    on a mismatch, the difference table and heatmap. `qdq repro` and `qdq export` give the rest on demand."""
    allure = allure_module()
    if allure is None:
        return
    look = verdict.status in LOOK_AT
    if not look:
        # A pass or a skip gets no attachment files (they were most of a run's time and of the HTML's size): its
        # case file and line, and a summary of its tensors, go in the description, inside its result.
        text = [f"`{case.id}`: {case.file.name}, line {case.line}"]
        if outcome is not None:
            text += [
                f"{label}: {' '.join(_summary(arrays).split())}"
                for label, arrays in (("inputs", outcome.inputs), ("outputs", outcome.outputs or {}))
                if arrays
            ]
            if outcome.error is not None:  # an expected refusal: what the backend said
                text.append(f"refused: {outcome.error.category}: {' '.join(str(outcome.error.native).split())[:500]}")
        allure.dynamic.description("\n\n".join(text))
        return
    allure.attach(case_section(case), name=f"{case.file.name}", attachment_type=allure.attachment_type.YAML)
    if outcome is not None:
        for label, arrays in (("inputs", outcome.inputs), ("outputs", outcome.outputs or {})):
            if look:
                attach_tensors(label, arrays)
            elif arrays:
                allure.attach(_summary(arrays), name=f"{label} (summary)", attachment_type=allure.attachment_type.TEXT)
        if outcome.error is not None:
            allure.attach(
                json.dumps(outcome.error.as_dict(), indent=1),
                name="refusal",
                attachment_type=allure.attachment_type.JSON,
            )
        if outcome.details.get("layers"):
            # The engine's layers and the precision each runs in (did it run quantized?), on every item that has
            # them: the one place a silent float fallback shows.
            allure.attach(
                outcome.details["layers"],
                name=f"engine layers ({outcome.details.get('layers_source', 'engine inspector')})",
                attachment_type=allure.attachment_type.JSON
                if outcome.details["layers"].lstrip().startswith("{")
                else allure.attachment_type.TEXT,
            )
    if not look:
        return
    if verdict.metrics:
        allure.attach(
            json.dumps(verdict.metrics, indent=1, default=str),
            name="metrics",
            attachment_type=allure.attachment_type.JSON,
        )
    from harness.engine.backend import instance

    try:
        script = instance(backend).repro(case) if backend in _backend_names() else None
    except Exception as exc:  # a case the backend's script writer cannot express: say so, never fail the item
        script = f"# no repro script: {type(exc).__name__}: {exc}\n"
    if script and len(script) > MAX_ATTACHMENT:  # large inline data: the report stays small, the command gives it
        script = (
            f"# The repro script is {len(script):,} characters (the case's data inline), over the report's "
            f"{MAX_ATTACHMENT:,} per attachment: `qdq repro {case.id} --backend {backend} -o repro.py`\n"
        )
    if script:
        allure.attach(script, name=f"repro-{backend}.py", attachment_type=allure.attachment_type.TEXT)
    for name, data in (outcome.artifacts if outcome is not None else {}).items():
        if len(data) > MAX_ATTACHMENT:
            allure.attach(
                f"{name} is {len(data):,} bytes, over the report's {MAX_ATTACHMENT:,} per attachment: "
                f"`qdq export {case.id} -o FILE` writes it",
                name=f"{name} (not attached)",
                attachment_type=allure.attachment_type.TEXT,
            )
            continue
        allure.attach(data, name=name, extension=name.rsplit(".", 1)[-1])
    if verdict.kind == "numeric-mismatch" and outcome is not None and outcome.outputs:
        from harness.engine.crossdiff import pair_diff
        from harness.cases.network import NetworkInfo
        from harness.engine.verdict import expected_arrays

        expect, _ = case.expectation_for(backend, version)
        if expect.kind == "values":
            info = NetworkInfo(case)
            expected = expected_arrays(case, expect.values, info)
            got = {k: v for k, v in outcome.outputs.items() if k in expected and np.shape(v) == np.shape(expected[k])}
            for d in pair_diff(case, info, "expected", "got", expected, got, outcome.inputs, expect.tolerance):
                attach_difference(d["output"], got[d["output"]], expected[d["output"]], d["first"], "got", "expected")


def _backend_names() -> set[str]:
    from harness.engine.backend import discover

    return set(discover())


def attach_difference(
    name: str, got: np.ndarray, expected: np.ndarray, rows: list[dict], got_label: str, expected_label: str
) -> None:
    """The first differing elements as a table (with the quantize input and scale behind each, its size in
    quantization steps and whether it sits on a rounding tie, as the bundle's diffs have them) and a heatmap of
    |got - expected| (drawn lazily, failures and disagreements only)."""
    allure = allure_module()
    if allure is None:
        return
    g, e = np.asarray(got).astype(np.float64), np.asarray(expected).astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where((g == e) | (np.isnan(g) & np.isnan(e)), 0.0, np.abs(g - e))
    diff = np.nan_to_num(diff, nan=np.inf)
    allure.attach(
        difference_table(rows, got_label, expected_label),
        name=f"{name} differences.csv",
        attachment_type=allure.attachment_type.CSV,
    )
    allure.attach(
        heatmap(diff, f"|{got_label} - {expected_label}| of {name}"),
        name=f"{name} heatmap",
        attachment_type=allure.attachment_type.PNG,
    )


def difference_table(rows: list[dict], got_label: str, expected_label: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "input", "scale", expected_label, got_label, "abs diff", "steps", "rounding"])
    for r in rows:
        w.writerow(
            [
                r["index"],
                r.get("input", ""),
                r.get("scale", ""),
                r[expected_label],
                r[got_label],
                r["abs"],
                "" if r.get("steps") is None else r["steps"],
                r.get("rounding") or "",
            ]
        )
    return buf.getvalue()


def heatmap(diff: np.ndarray, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = np.asarray(diff, dtype=np.float64)
    shape = d.shape
    grid = d.reshape(-1, shape[-1]) if d.ndim >= 2 else d.reshape(1, -1)
    finite = np.where(np.isfinite(grid), grid, np.nan)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    image = ax.imshow(finite, aspect="auto", cmap="magma", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="|difference|")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"dim {len(shape) - 1}" if shape else "element")
    ax.set_ylabel(f"dims {list(range(len(shape) - 1))} flattened (shape {list(shape[:-1])})" if len(shape) >= 2 else "")
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


# --- run level ------------------------------------------------------------------------------------------------------


def write_crash_result(alluredir: Path, nodeid: str, message: str) -> None:
    """A result for an item whose xdist worker died before allure-pytest could write one (else it vanishes)."""
    name = nodeid.split("::")[-1]
    # uuid5 of the node id: a crash xdist repeats overwrites the same result instead of adding "retries"
    result = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "crash:" + nodeid)),
        "historyId": uuid.uuid5(uuid.NAMESPACE_URL, nodeid).hex,
        "name": name,
        "fullName": nodeid,
        "status": "broken",
        "statusDetails": {"message": f"BACKEND-CRASH: {message[:2000]}"},
        "labels": [{"name": "suite", "value": nodeid.split("::")[0]}],
    }
    (alluredir / f"{result['uuid']}-result.json").write_text(json.dumps(result))

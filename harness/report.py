"""Allure results and reports: labels and attachments on every item, the report-level files, the HTML report.

- Each item gets labels a person can group by (epic = source document, feature = case family, story = case id,
  tags, severity, backend) and attachments (the case YAML, inputs and outputs as small CSV tables, the repro script;
  on a mismatch or disagreement the diff table and a heatmap PNG).
- Versions are parameters excluded from the history id, so a test's history survives upgrades.
- The failure categories come from harness/verdict.py's KINDS, the one place, into both `categories.json`
  (Allure 2 / classic) and the Allure 3 config (its default report ignores categories.json).
- The HTML: Allure 3 (npm `allure`, pinned in package.json, no Java), single file, history in a JSONL file,
  the analytics tag stripped so the page makes no external request.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np

from .skips import SKIP_KINDS, tag
from .verdict import KINDS

REPO = Path(__file__).resolve().parent.parent
SMALL = 256  # tensors up to this many elements are attached as full CSV tables
MAX_ATTACHMENT = 1 << 20  # characters or bytes of one attachment (a repro script with data inline, a model)
_GA = re.compile(
    r'<script async src="https://www\.googletagmanager\.com/gtag/js\?id=[^"]*"></script>\s*'
    r"<script>\s*window\.dataLayer.*?</script>",
    re.S,
)

# Allure statuses our verdict statuses become. pytest reports a declared deviation as xfail, which allure-pytest
# writes as "skipped"; `mark_declared_deviations` makes it "unknown" so a known deviation never looks like a
# backend that did not run (Allure shows "unknown" as its own colour, and the categories name it).
_ALLURE_STATUS = {"fail": "failed", "error": "broken", "xfail": "unknown", "skip": "skipped"}
# Skips by their typed kind (harness/skips.py): every skip's message starts with its tag, e.g. `[no-gpu]`.
_SKIP_CATEGORIES = [
    (f"skipped: {label}", re.escape(tag(kind))) for kind, label in SKIP_KINDS.items() if kind != "other"
]
_SKIP_CATEGORIES.append(("skipped: other reason", r""))  # every skipped result gets a category


def categories() -> list[dict]:
    """Allure categories, first match wins: every verdict kind by its message prefix, then skips by reason."""
    out = []
    for kind, (status, prefix, meaning) in KINDS.items():
        if status in ("pass", "skip"):
            continue
        out.append(
            {
                "name": kind.replace("-", " "),
                "description": meaning,
                "messageRegex": rf"[\s\S]*{prefix}:[\s\S]*",
                "matchedStatuses": [_ALLURE_STATUS[status]],
            }
        )
    for name, pattern in _SKIP_CATEGORIES:
        out.append({"name": name, "messageRegex": rf"[\s\S]*{pattern}[\s\S]*", "matchedStatuses": ["skipped"]})
    return out


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
                outcome.details["layers"], name="engine layers (inspector)", attachment_type=allure.attachment_type.JSON
            )
    if not look:
        return
    if verdict.metrics:
        allure.attach(
            json.dumps(verdict.metrics, indent=1, default=str),
            name="metrics",
            attachment_type=allure.attachment_type.JSON,
        )
    from .backend import instance

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
                f"`qdq export {case.id} -o model.onnx` writes it",
                name=f"{name} (not attached)",
                attachment_type=allure.attachment_type.TEXT,
            )
            continue
        allure.attach(data, name=name, extension=name.rsplit(".", 1)[-1])
    if verdict.kind == "numeric-mismatch" and outcome is not None and outcome.outputs:
        from .crossdiff import pair_diff
        from .network import NetworkInfo
        from .verdict import expected_arrays

        expect, _ = case.expectation_for(backend, version)
        if expect.kind == "values":
            info = NetworkInfo(case)
            expected = expected_arrays(case, expect.values, info)
            got = {k: v for k, v in outcome.outputs.items() if k in expected and np.shape(v) == np.shape(expected[k])}
            for d in pair_diff(case, info, "expected", "got", expected, got, outcome.inputs, expect.tolerance):
                attach_difference(d["output"], got[d["output"]], expected[d["output"]], d["first"], "got", "expected")


def _backend_names() -> set[str]:
    from .backend import discover

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


def _git_commit(path: Path) -> str:
    try:
        return (
            subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_results_extras(alluredir: Path, backends: dict, environment: dict, cases_root: Path | None) -> None:
    """environment.properties and categories.json, from the controller only."""
    alluredir.mkdir(parents=True, exist_ok=True)
    props = {"harness": environment.get("harness"), "python": environment.get("python")}
    for name, b in backends.items():
        props[f"backend.{name}"] = (
            f"{b['version'] or '-'} ({'available' if b['available'] else 'unavailable: ' + b['reason']})"
        )
        for key, value in (b.get("details") or {}).items():
            props[f"backend.{name}.{key}"] = value
    for pkg in ("numpy", "ml_dtypes"):
        props[pkg] = environment.get(pkg)
    props["cases.git_commit"] = _git_commit(cases_root or REPO)
    text = "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in props.items() if v is not None)
    (alluredir / "environment.properties").write_text(text)
    (alluredir / "categories.json").write_text(json.dumps(categories(), indent=1))


def mark_declared_deviations(alluredir: Path) -> int:
    """Results of declared deviations (pytest's xfail, written as "skipped") become status "unknown", their
    message without pytest's "XFAIL " prefix. Idempotent; returns how many it changed."""
    changed = 0
    for path in Path(alluredir).glob("*-result.json"):
        try:
            result = json.loads(path.read_text())
        except ValueError:
            continue
        message = (result.get("statusDetails") or {}).get("message") or ""
        if result.get("status") == "skipped" and re.match(r"XFAIL (DECLARED|DOCUMENTATION)-DEVIATION: ", message):
            result["status"] = "unknown"
            reason = message[len("XFAIL ") :].split("\n\n_pytest.outcomes.XFailed")[0]
            result["statusDetails"]["message"] = reason
            result["statusDetails"]["trace"] = ""
            # Allure's page for an "unknown" result shows no status message: the reason goes in the description,
            # which every result page shows at its top.
            if reason not in (result.get("description") or ""):
                result["description"] = f"**{reason.split(':', 1)[0]}**: {reason.split(':', 1)[-1].strip()}" + (
                    "\n\n" + result["description"] if result.get("description") else ""
                )
            path.write_text(json.dumps(result))
            changed += 1
    return changed


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


def allure_cli() -> Path | None:
    local = REPO / "node_modules" / ".bin" / "allure"
    if local.exists():
        return local
    found = shutil.which("allure")
    return Path(found) if found else None


HOW_TO_GET_ALLURE = (
    "the Allure 3 command-line tool is not installed: run `npm ci` in the repository "
    "(package.json pins allure 3.18.0; it needs Node.js, no Java)"
)


def generate_html(out_dir: Path, history_from: Path | None = None) -> tuple[bool, str]:
    """DIR/allure-report/index.html (single file, grouped by source document, case family, case) and
    DIR/allure-report/by-backend.html (grouped by backend), from DIR/allure-results, in one `allure generate` (each
    generate adds a history entry); history in DIR/history.jsonl, its newest entry trimmed to what a trend needs."""
    out_dir = Path(out_dir).resolve()
    results = out_dir / "allure-results"
    cli = allure_cli()
    if cli is None:
        return False, HOW_TO_GET_ALLURE
    if not results.is_dir():
        return False, f"no Allure results in {results}"
    history = out_dir / "history.jsonl"
    if history_from and Path(history_from).resolve() != history:
        shutil.copyfile(history_from, history)
    report = out_dir / "allure-report"
    shutil.rmtree(report, ignore_errors=True)
    views = {"by-case": ["epic", "feature", "story"], "by-backend": ["backend", "version", "feature", "story"]}
    config = {
        "name": "qdq-harness conformance",
        "output": str(report),
        "historyPath": str(history),
        "historyLimit": 100,
        "categories": categories(),
        "plugins": {
            view: {
                "import": "@allurereport/plugin-awesome",
                "options": {
                    "singleFile": True,
                    "reportLanguage": "en",
                    "groupBy": group,
                    "reportName": f"qdq-harness conformance ({view.replace('-', ' ')})",
                },
            }
            for view, group in views.items()
        },
    }
    rc = out_dir / "allurerc.json"
    rc.write_text(json.dumps(config, indent=1))
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
    run = subprocess.run(
        [str(cli), "generate", str(results), "--config", str(rc)],
        capture_output=True,
        text=True,
        env=env,
        cwd=out_dir,
        timeout=600,
    )
    if run.returncode != 0:
        return False, f"allure generate failed ({run.returncode}): {(run.stderr or run.stdout)[-2000:]}"
    pages = {"by-case": report / "index.html", "by-backend": report / "by-backend.html"}
    for view, target in pages.items():
        page = report / view / "index.html"
        if not page.exists():
            return False, f"allure generate wrote no {view} report"
        target.write_text(_GA.sub("", page.read_text(encoding="utf-8")), encoding="utf-8")
    for leftover in report.iterdir():  # Allure's own summary page and per-view folders: the two files replace them
        if leftover not in pages.values():
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    trim_history(history)
    return True, str(pages["by-case"])


HISTORY_MESSAGE_CHARS = 300


def trim_history(history: Path) -> None:
    """The newest history entry without stack traces and labels, messages cut short: a trend needs each result's
    id, status and a hint of why, not 2 MB per run."""
    if not history.exists():
        return
    lines = history.read_text(encoding="utf-8").splitlines()
    if not lines:
        return
    try:
        entry = json.loads(lines[-1])
    except ValueError:
        return
    for result in (entry.get("testResults") or {}).values():
        result.pop("trace", None)
        result.pop("labels", None)
        if isinstance(result.get("message"), str):
            result["message"] = result["message"][:HISTORY_MESSAGE_CHARS]
    lines[-1] = json.dumps(entry, separators=(",", ":"))
    atomic = history.with_suffix(".tmp")
    atomic.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(atomic, history)


def result_links(report_index: Path) -> dict[tuple[str, str], str]:
    """(case id, backend) -> a link into the single-file report (`index.html#/<result id>`), read from the results
    the page embeds (Allure 3 derives the ids at generate time, so they can only be read back)."""
    import base64

    links = {}
    text = Path(report_index).read_text(encoding="utf-8")
    for result_id, blob in re.findall(r'd\("data/test-results/([0-9a-f]+)\.json","([^"]+)"\)', text):
        try:
            result = json.loads(base64.b64decode(blob))
        except ValueError:
            continue
        labels = {label["name"]: label["value"] for label in result.get("labels") or []}
        if "story" in labels and "backend" in labels:
            links[(labels["story"], labels["backend"])] = f"allure-report/{Path(report_index).name}#/{result_id}"
    return links

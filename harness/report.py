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
import uuid
from pathlib import Path

import numpy as np

from .verdict import KINDS

REPO = Path(__file__).resolve().parent.parent
SMALL = 256  # tensors up to this many elements are attached as full CSV tables
_GA = re.compile(r'<script async src="https://www\.googletagmanager\.com/gtag/js\?id=[^"]*"></script>\s*'
                 r'<script>\s*window\.dataLayer.*?</script>', re.S)

# Allure statuses our verdict statuses become (pytest xfail/skip -> "skipped", AssertionError -> "failed").
_ALLURE_STATUS = {"fail": "failed", "error": "broken", "xfail": "skipped", "skip": "skipped"}
_SKIP_CATEGORIES = [
    ("skipped: backend unavailable", r"unavailable: "),
    ("skipped: engine built, no GPU to run it", r"engine built"),
    ("skipped: feature the backend lacks", r"even in a valid twin"),
    ("skipped: version requirement", r"needs \S+ [<>=!~]"),
]


def categories() -> list[dict]:
    """Allure categories, first match wins: every verdict kind by its message prefix, then skips by reason."""
    out = []
    for kind, (status, prefix, meaning) in KINDS.items():
        if status in ("pass", "skip"):
            continue
        out.append({"name": kind.replace("-", " "), "description": meaning,
                    "messageRegex": rf"[\s\S]*{prefix}:[\s\S]*", "matchedStatuses": [_ALLURE_STATUS[status]]})
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


def label_item(case, backend: str, version: str | None) -> None:
    allure = allure_module()
    if allure is None:
        return
    allure.dynamic.title(f"{case.title} [{backend}]")
    allure.dynamic.epic(case.source.get("document", "unknown"))
    allure.dynamic.feature(case.id.split("/")[0])
    allure.dynamic.story(case.id)
    for tag in case.tags:
        allure.dynamic.tag(tag)
    level = getattr(allure.severity_level, case.severity.upper(), allure.severity_level.NORMAL)
    allure.dynamic.severity(level)
    allure.dynamic.label("backend", backend)
    allure.dynamic.parameter("backend", backend)
    allure.dynamic.parameter("backend version", version or "-", excluded=True)
    if case.source.get("link"):
        allure.dynamic.link(case.source["link"], name="source")


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
        f = np.asarray(a).astype(np.float64)
        lines.append(f"{name}: {a.dtype} {list(a.shape)}, min {np.nanmin(f):.6g}, max {np.nanmax(f):.6g}, "
                     f"mean {np.nanmean(f):.6g}, NaN {int(np.isnan(f).sum())}")
    return "\n".join(lines)


def attach_tensors(label: str, arrays: dict[str, np.ndarray]) -> None:
    allure = allure_module()
    if allure is None or not arrays:
        return
    if all(np.asarray(a).size <= SMALL for a in arrays.values()):
        allure.attach(_csv(arrays), name=f"{label}.csv", attachment_type=allure.attachment_type.CSV)
    else:
        allure.attach(_summary(arrays), name=f"{label} (summary)", attachment_type=allure.attachment_type.TEXT)


def attach_case(case, backend: str, outcome, verdict) -> None:
    """Every item: the case file, inputs, outputs, metrics, the repro script; on failure: diff table + heatmap."""
    allure = allure_module()
    if allure is None:
        return
    allure.attach(case.file.read_text(), name=f"{case.file.name}", attachment_type=allure.attachment_type.YAML)
    if outcome is not None:
        attach_tensors("inputs", outcome.inputs)
        attach_tensors("outputs", outcome.outputs or {})
        if outcome.error is not None:
            allure.attach(json.dumps(outcome.error.as_dict(), indent=1), name="refusal",
                          attachment_type=allure.attachment_type.JSON)
    if verdict.metrics:
        allure.attach(json.dumps(verdict.metrics, indent=1, default=str), name="metrics",
                      attachment_type=allure.attachment_type.JSON)
    try:
        from .repro import write_repro

        allure.attach(write_repro(case, backend), name=f"repro-{backend}.py", attachment_type=allure.attachment_type.TEXT)
    except Exception:  # no writer for this backend, or the case cannot be expressed: no script, no failure
        pass
    if backend in ("onnxruntime", "onnx-reference", "tensorrt-onnx"):
        try:
            from .onnx_export import export

            allure.attach(export(case).model.SerializeToString(), name="model.onnx", extension="onnx")
        except Exception:
            pass
    if verdict.kind == "numeric-mismatch" and outcome is not None and outcome.outputs:
        from .network import NetworkInfo
        from .verdict import expected_arrays

        expect, _ = case.expectation_for(backend, None)
        if expect.kind == "values":
            expected = expected_arrays(case, expect.values, NetworkInfo(case))
            for name, exp in expected.items():
                if name in outcome.outputs and np.shape(outcome.outputs[name]) == np.shape(exp):
                    attach_difference(name, outcome.outputs[name], exp, outcome.inputs, "got", "expected")


def attach_difference(name: str, got: np.ndarray, expected: np.ndarray, inputs: dict, got_label: str,
                      expected_label: str) -> None:
    """The first differing elements as a table, and a heatmap of |got - expected| (drawn lazily, failures only)."""
    allure = allure_module()
    if allure is None:
        return
    g, e = np.asarray(got).astype(np.float64), np.asarray(expected).astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where((g == e) | (np.isnan(g) & np.isnan(e)), 0.0, np.abs(g - e))
    diff = np.nan_to_num(diff, nan=np.inf)
    same_shape_inputs = {k: np.asarray(v) for k, v in (inputs or {}).items() if np.shape(v) == g.shape}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", *same_shape_inputs, expected_label, got_label, "abs diff"])
    for idx in np.argwhere(diff > 0)[:50]:
        t = tuple(idx)
        w.writerow([[int(i) for i in t], *(float(v[t]) for v in same_shape_inputs.values()), e[t], g[t], diff[t]])
    allure.attach(buf.getvalue(), name=f"{name} differences.csv", attachment_type=allure.attachment_type.CSV)
    allure.attach(heatmap(diff, f"|{got_label} - {expected_label}| of {name}"), name=f"{name} heatmap",
                  attachment_type=allure.attachment_type.PNG)


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
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_results_extras(alluredir: Path, backends: dict, environment: dict, cases_root: Path | None) -> None:
    """environment.properties and categories.json, from the controller only."""
    alluredir.mkdir(parents=True, exist_ok=True)
    props = {"harness": environment.get("harness"), "python": environment.get("python")}
    for name, b in backends.items():
        props[f"backend.{name}"] = f"{b['version'] or '-'} ({'available' if b['available'] else 'unavailable: ' + b['reason']})"
        for key, value in (b.get("details") or {}).items():
            props[f"backend.{name}.{key}"] = value
    for pkg in ("numpy", "ml_dtypes", "onnx", "onnxruntime"):
        props[pkg] = environment.get(pkg)
    props["cases.git_commit"] = _git_commit(cases_root or REPO)
    text = "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in props.items() if v is not None)
    (alluredir / "environment.properties").write_text(text)
    (alluredir / "categories.json").write_text(json.dumps(categories(), indent=1))


def write_crash_result(alluredir: Path, nodeid: str, message: str) -> None:
    """A result for an item whose xdist worker died before allure-pytest could write one (else it vanishes)."""
    name = nodeid.split("::")[-1]
    # uuid5 of the node id: a crash xdist repeats overwrites the same result instead of adding "retries"
    result = {"uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "crash:" + nodeid)), "historyId": uuid.uuid5(uuid.NAMESPACE_URL, nodeid).hex, "name": name,
              "fullName": nodeid, "status": "broken",
              "statusDetails": {"message": f"BACKEND-CRASH: {message[:2000]}"},
              "labels": [{"name": "suite", "value": nodeid.split("::")[0]}]}
    (alluredir / f"{result['uuid']}-result.json").write_text(json.dumps(result))


def allure_cli() -> Path | None:
    local = REPO / "node_modules" / ".bin" / "allure"
    if local.exists():
        return local
    found = shutil.which("allure")
    return Path(found) if found else None


HOW_TO_GET_ALLURE = ("the Allure 3 command-line tool is not installed: run `npm ci` in the repository "
                     "(package.json pins allure 3.18.0; it needs Node.js, no Java)")


def generate_html(out_dir: Path, history_from: Path | None = None) -> tuple[bool, str]:
    """DIR/allure-report/index.html (single file) from DIR/allure-results, with history in DIR/history.jsonl."""
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
    config = {"name": "qdq-harness conformance", "output": str(report), "historyPath": str(history),
              "historyLimit": 100, "categories": categories(),
              "plugins": {"awesome": {"options": {"singleFile": True, "reportLanguage": "en",
                                                  "groupBy": ["epic", "feature", "story"]}}}}
    rc = out_dir / "allurerc.json"
    rc.write_text(json.dumps(config, indent=1))
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
    run = subprocess.run([str(cli), "generate", str(results), "--config", str(rc)], capture_output=True, text=True,
                         env=env, cwd=out_dir, timeout=600)
    if run.returncode != 0:
        return False, f"allure generate failed ({run.returncode}): {(run.stderr or run.stdout)[-2000:]}"
    pages = list(report.rglob("*.html"))
    for page in pages:
        text = page.read_text(encoding="utf-8")
        stripped = _GA.sub("", text)
        if stripped != text:
            page.write_text(stripped, encoding="utf-8")
    index = report / "index.html" if (report / "index.html").exists() else (pages[0] if pages else None)
    return index is not None, str(index) if index else "allure generate wrote no HTML"

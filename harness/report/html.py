"""The run-level Allure files (categories, environment, executor) and the HTML reports made from them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path


from harness.engine.skips import SKIP_KINDS, tag
from harness.engine.verdict import KINDS


from harness.report.allure import REPO, _ALLURE_STATUS
from harness.report.compact import compact

_GA = re.compile(
    r'<script async src="https://www\.googletagmanager\.com/gtag/js\?id=[^"]*"></script>\s*'
    r"<script>\s*window\.dataLayer.*?</script>",
    re.S,
)


# Skips by their typed kind (harness/engine/skips.py): every skip's message starts with its tag, e.g. `[no-gpu]`.
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


def write_run_reports(out_dir: Path, doc: dict, alluredir: Path | None, cases_root: Path | None) -> None:
    """What a finished run writes once, from its whole bundle: the summaries, and the Allure results' report-level
    files (environment, categories, declared deviations marked)."""
    from harness.report import summary

    summary.write(out_dir, doc)
    if alluredir:
        write_results_extras(alluredir, doc["backends"], doc["environment"], cases_root)
        mark_declared_deviations(alluredir)


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
    DIR/allure-report/by-backend.html (grouped by backend), from a compact copy of DIR/allure-results
    (harness/report/compact.py), in one `allure generate` (each generate adds a history entry); history in
    DIR/history.jsonl, its newest entry trimmed to what a trend needs."""
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
    shown = out_dir / ".allure-compact"  # the results the pages show (harness/report/compact.py); ours to remove
    try:
        compact(results, shown)
        run = subprocess.run(
            [str(cli), "generate", str(shown), "--config", str(rc)],
            capture_output=True,
            text=True,
            env=env,
            cwd=out_dir,
            timeout=600,
        )
    finally:
        shutil.rmtree(shown, ignore_errors=True)
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

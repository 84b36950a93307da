"""DIR/summary.md and DIR/summary.html: the case-by-backend matrix with statuses and the worst difference per
cell, for a pull-request comment or a terminal, without Allure."""

from __future__ import annotations

import html
from pathlib import Path

from .bundle import atomic_write

MARK = {"pass": "pass", "fail": "**FAIL**", "xfail": "xfail", "skip": "skip", "error": "**ERROR**"}
COLOUR = {"pass": "#d8f0d8", "fail": "#f5c6c6", "xfail": "#fbeec0", "skip": "#e8e8e8", "error": "#e8b0e8"}


def worst(record: dict) -> float | None:
    """The largest |difference| in a record's metrics (nested for documentation deviations)."""
    found = []

    def walk(m):
        if isinstance(m, dict):
            if isinstance(m.get("max_abs"), (int, float)) and m.get("max_abs"):
                found.append(float(m["max_abs"]))
            for v in m.values():
                walk(v)

    walk(record.get("metrics") or {})
    return max(found) if found else None


def _grid(doc: dict):
    columns = list(doc["backends"])
    rows: dict[str, dict[str, dict]] = {}
    for r in doc["records"]:
        backend = r.get("backend") or "(file)"
        rows.setdefault(r["case_id"], {})[backend] = r
        if backend not in columns:
            columns.append(backend)
    return columns, rows


def _counts(doc: dict) -> str:
    counts: dict[str, int] = {}
    for r in doc["records"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _cell_text(record: dict | None, marks: dict) -> str:
    if record is None:
        return ""
    w = worst(record)
    return marks.get(record["status"], record["status"]) + (f" {w:.3g}" if w else "")


def markdown(doc: dict) -> str:
    columns, rows = _grid(doc)
    lines = [f"# qdq-harness results ({'partial' if doc['partial'] else 'complete'}, {doc['started']})", "",
             _counts(doc), "", "| case | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for case_id in sorted(rows):
        cells = [_cell_text(rows[case_id].get(c), MARK) for c in columns]
        lines.append(f"| `{case_id}` | " + " | ".join(cells) + " |")
    lines += ["", "Backends: " + "; ".join(f"{n} {b['version'] or '-'}" + ("" if b["available"] else f" (unavailable: {b['reason']})")
                                          for n, b in doc["backends"].items())]
    return "\n".join(lines) + "\n"


def to_html(doc: dict) -> str:
    columns, rows = _grid(doc)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for case_id in sorted(rows):
        cells = []
        for c in columns:
            r = rows[case_id].get(c)
            style = f' style="background:{COLOUR.get(r["status"], "#fff")}" title="{html.escape(r.get("reason") or "")}"' if r else ""
            cells.append(f"<td{style}>{html.escape(_cell_text(r, {}))}</td>")
        body.append(f"<tr><th style='text-align:left'><code>{html.escape(case_id)}</code></th>{''.join(cells)}</tr>")
    return ("<!doctype html><meta charset='utf-8'><title>qdq-harness results</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border:1px solid #ccc}table{border-collapse:collapse}</style>"
            f"<h1>qdq-harness results</h1><p>{html.escape(_counts(doc))}</p>"
            f"<table><tr><th>case</th>{head}</tr>{''.join(body)}</table>")


def write(out_dir: Path, doc: dict) -> None:
    atomic_write(Path(out_dir) / "summary.md", markdown(doc).encode())
    atomic_write(Path(out_dir) / "summary.html", to_html(doc).encode())

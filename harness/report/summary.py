"""The case-by-backend matrix, one renderer for three readers: the terminal (`qdq run`), `DIR/summary.md` (a
pull-request comment) and `DIR/summary.html` (a page beside the Allure report, linking into it).

Every cell is a short, labelled mark, the same in all three; a legend says what each means; reasons are never cut:
the terminal wraps them at word boundaries under the matrix, the Markdown lists them, the HTML shows them in the
cell. Skips are told apart: not installed, built but no GPU to run it, a feature the backend lacks, a version
requirement.
"""

from __future__ import annotations

import html
import shutil
import textwrap
from collections import Counter
from pathlib import Path

from harness.engine import skips
from harness.results.bundle import atomic_write

# (mark, meaning) per cell class, in legend order.
CLASSES: dict[str, tuple[str, str]] = {
    "pass": ("pass", "the expectation held"),
    "fail": ("FAIL", "a wrong value, a wrong or missing error, an undeclared disagreement, an invalid case file"),
    "error": ("ERROR", "the backend or the harness crashed"),
    "deviation": ("dev", "a declared deviation was observed (the case says this backend differs, and why)"),
    "bug": ("bug", "a declared backend bug was observed: it breaks its own specification (the case cites where)"),
    "doc-deviation": ("doc", "the document prints other values than the contract gives (declared)"),
    "not-installed": ("n/i", "skip: the backend is not installed or has no GPU here"),
    "built": ("built", "skip: built for real, no GPU (or no supported GPU) to run it: a build verdict only"),
    "unsupported": ("n/s", "skip: a feature this backend lacks (shown by a valid twin of the case)"),
    "version": ("ver", "skip: the case needs another version of the backend"),
    "skip": ("skip", "skip: another reason (the skips, by kind, are listed above)"),
}
COLOUR = {
    "pass": "#d8f0d8",
    "fail": "#f5c6c6",
    "error": "#e8b0e8",
    "deviation": "#fbeec0",
    "bug": "#f8d4a8",
    "doc-deviation": "#fbeec0",
    "not-installed": "#eeeeee",
    "built": "#e3ecf7",
    "unsupported": "#eeeeee",
    "version": "#eeeeee",
    "skip": "#eeeeee",
}
CROSS = "cross-backend"


def cell_class(record: dict) -> str:
    status, _reason = record["status"], record.get("reason") or ""
    if status == "xfail":
        if record.get("kind") == "documentation-deviation":
            return "doc-deviation"
        return "bug" if record.get("override_kind") == "bug" else "deviation"
    if status != "skip":
        return status
    kind = skips.kind_of(record)
    return {
        "not-installed": "not-installed",
        "no-gpu": "not-installed",
        "built-not-run": "built",
        "unsupported-gpu": "built",
        "feature-missing": "unsupported",
        "version": "version",
    }.get(kind, "skip")


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


def grid(doc: dict) -> tuple[list[str], dict[str, dict[str, dict]]]:
    columns = list(doc["backends"])
    rows: dict[str, dict[str, dict]] = {}
    for r in doc["records"]:
        backend = r.get("backend") or "(file)"
        rows.setdefault(r["case_id"], {})[backend] = r
        if backend not in columns:
            columns.append(backend)
    if CROSS in columns:  # the pairwise diff last, the file column after it
        columns.append(columns.pop(columns.index(CROSS)))
    return columns, rows


def counts(doc: dict) -> str:
    c = Counter(r["status"] for r in doc["records"])
    order = ["pass", "fail", "error", "xfail", "skip"]
    names = {"xfail": "declared deviation"}
    return ", ".join(f"{c[s]} {names.get(s, s)}{'s' if c[s] != 1 and s == 'xfail' else ''}" for s in order if c[s])


def _mark(record: dict | None) -> str:
    return CLASSES[cell_class(record)][0] if record else ""


def _detail(record: dict) -> str:
    w = worst(record)
    return f"max |diff| {w:.6g}; " if w else ""


# --- terminal -----------------------------------------------------------------------------------------------------


def terminal(doc: dict, width: int | None = None) -> str:
    """Columns are numbered (the legend names them) so the matrix fits a terminal; reasons wrap under it."""
    width = width or shutil.get_terminal_size((120, 40)).columns
    columns, rows = grid(doc)
    case_w = max([len("case")] + [len(c) for c in rows]) + 2
    col_w = max(len(m) for m, _ in CLASSES.values()) + 2
    lines = [
        "backends: " + "  ".join(f"[{i + 1}] {c}" for i, c in enumerate(columns)),
        "",
        "case".ljust(case_w) + "".join(f"[{i + 1}]".ljust(col_w) for i in range(len(columns))),
    ]
    for case_id in sorted(rows):
        lines.append(
            case_id.ljust(case_w) + "".join(_mark(rows[case_id].get(c)).ljust(col_w) for c in columns).rstrip()
        )
    used = {cell_class(r) for r in doc["records"]}
    lines += ["", "legend:"] + [f"  {m:<6}{meaning}" for k, (m, meaning) in CLASSES.items() if k in used]
    lines += ["", counts(doc)]
    notable = [r for r in doc["records"] if r["status"] in ("fail", "error")]
    if notable:
        lines += ["", "not passing:"]
        wrap = textwrap.TextWrapper(
            width=max(width, 60),
            initial_indent="  ",
            subsequent_indent="      ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        for r in sorted(notable, key=lambda r: (r["case_id"], r.get("backend") or "")):
            text = f"{CLASSES[cell_class(r)][0]} {r['case_id']} [{r.get('backend') or 'file'}]: {_detail(r)}{r.get('reason', '')}"
            lines += wrap.wrap(" ".join(text.split()))
    lines += skip_lines(doc)
    return "\n".join(lines)


def skip_groups(doc: dict) -> list[tuple[str, str, int, str]]:
    """(what kind of skip, backend, how many, one reason) per typed skip kind and backend: one line where a matrix
    would repeat the same reason in hundreds of cells."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in doc["records"]:
        if r["status"] == "skip":
            groups.setdefault((skips.SKIP_KINDS[skips.kind_of(r)], r.get("backend") or "file"), []).append(r)
    return [
        (label, backend, len(rs), " ".join((rs[0].get("reason") or "").split()))
        for (label, backend), rs in sorted(groups.items())
    ]


def skip_lines(doc: dict) -> list[str]:
    """Skips grouped by kind and backend, with one reason each."""
    groups = skip_groups(doc)
    if not groups:
        return []
    out = ["", "skipped:"]
    for label, backend, n, reason in groups:
        out.append(f"  {backend}: {n} {label} ({reason[:160]}{'...' if len(reason) > 160 else ''})")
    return out


def disagreement_lines(doc: dict) -> list[str]:
    lines = []
    for d in doc.get("diffs", []):
        if d["agree"]:
            continue
        a, b = d["backends"]
        tag = f"declared: {d['declared'][0]}" if d.get("declared") else "UNDECLARED"
        if d.get("fused_vs_simulated"):
            tag = "fused vs simulated, by design" + (f"; {tag}" if d.get("declared") else "")
        steps = (
            f", {d['max_steps']:g} step{'s' if d['max_steps'] != 1 else ''}" if d.get("max_steps") is not None else ""
        )
        lines.append(
            f"DIFF {d['case_id']} {a} vs {b} [{d['output']}]: {d['differing']} of {d['total']} differ, "
            f"max |diff| {d['max_abs']:.6g}{steps} ({tag})"
        )
    return lines


# --- Markdown -----------------------------------------------------------------------------------------------------


def _findings(doc: dict) -> list[tuple[str, list[dict]]]:
    """What a reader looks at first: what failed, then the declared deviations."""
    out = []
    sections = (
        ("Not passing", lambda r: r["status"] in ("fail", "error")),
        ("Declared backend bugs (the backend breaks its own specification)", _declared_bug),
        ("Declared deviations", lambda r: r["status"] == "xfail" and not _declared_bug(r)),
    )
    for title, chosen_by in sections:
        chosen = sorted(
            (r for r in doc["records"] if chosen_by(r)), key=lambda r: (r["case_id"], r.get("backend") or "")
        )
        if chosen or not title.startswith("Declared backend bugs"):
            out.append((title, chosen))
    return out


def _declared_bug(record: dict) -> bool:
    return record["status"] == "xfail" and record.get("override_kind") == "bug"


def markdown(doc: dict) -> str:
    """What failed, the declared deviations, the skips grouped by kind, then the full matrix and its legend."""
    columns, rows = grid(doc)
    state = "partial" if doc.get("partial") else "complete"
    lines = [f"# qdq-harness results ({state}, {doc['started']})", "", counts(doc)]
    for title, chosen in _findings(doc):
        lines += ["", f"## {title}", ""]
        lines += [
            f"- `{r['case_id']}` [{r.get('backend') or 'file'}]: {_detail(r)}{_md(r.get('reason', ''))}" for r in chosen
        ] or ["none"]
    groups = skip_groups(doc)
    if groups:
        lines += ["", "## Skipped, by kind", ""]
        lines += [f"- {label}: {backend} x{n} ({_md(reason)[:200]})" for label, backend, n, reason in groups]
    lines += ["", "## Every case", "", "| case | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for case_id in sorted(rows):
        cells = []
        for c in columns:
            r = rows[case_id].get(c)
            mark = _mark(r)
            cells.append(f"**{mark}**" if r and r["status"] in ("fail", "error") else mark)
        lines.append(f"| `{case_id}` | " + " | ".join(cells) + " |")
    used = {cell_class(r) for r in doc["records"]}
    lines += ["", "Legend: " + "; ".join(f"`{m}` {meaning}" for k, (m, meaning) in CLASSES.items() if k in used)]
    lines += [
        "",
        "Backends: "
        + "; ".join(
            f"{n} {b['version'] or '-'}" + ("" if b["available"] else f" (unavailable: {b['reason']})")
            for n, b in doc["backends"].items()
        ),
    ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# --- HTML ---------------------------------------------------------------------------------------------------------


def to_html(doc: dict, links: dict[tuple[str, str], str] | None = None) -> str:
    """What failed, the declared deviations (each with its reason), the skips grouped by kind, then the full matrix;
    with `links` ((case id, backend) -> URL into the Allure report) each mark opens that result. A matrix cell shows
    its mark; a skip's reason is in the grouped list (and the cell's tooltip), not repeated in every cell."""
    links = links or {}
    columns, rows = grid(doc)

    def mark_of(r: dict) -> str:
        mark = html.escape(CLASSES[cell_class(r)][0])
        url = links.get((r["case_id"], r.get("backend") or ""))
        return f'<a href="{html.escape(url)}">{mark}</a>' if url else mark

    sections = []
    for title, chosen in _findings(doc):
        items = "".join(
            f"<li><b>{mark_of(r)}</b> <code>{html.escape(r['case_id'])}</code> [{html.escape(r.get('backend') or 'file')}]: "
            f"{html.escape(_detail(r) + (r.get('reason') or ''))}</li>"
            for r in chosen
        )
        sections.append(
            f"<h2>{html.escape(title)} ({len(chosen)})</h2>" + (f"<ul>{items}</ul>" if items else "<p>none</p>")
        )
    groups = skip_groups(doc)
    if groups:
        rows_html = "".join(
            f"<tr><td>{html.escape(label)}</td><td>{html.escape(backend)}</td><td>{n}</td>"
            f"<td class='why'>{html.escape(reason[:300])}</td></tr>"
            for label, backend, n, reason in groups
        )
        sections.append(
            "<h2>Skipped, by kind</h2><table><tr><th>kind</th><th>backend</th><th>cases</th>"
            f"<th>reason (first case)</th></tr>{rows_html}</table>"
        )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for case_id in sorted(rows):
        cells = []
        for c in columns:
            r = rows[case_id].get(c)
            if r is None:
                cells.append("<td></td>")
                continue
            cls = cell_class(r)
            reason = html.escape(_detail(r) + (r.get("reason") or ""), quote=True)
            shown = f'<div class="why">{reason}</div>' if r["status"] in ("fail", "error", "xfail") else ""
            tip = f' title="{reason[:500]}"' if r["status"] != "pass" else ""
            cells.append(f'<td style="background:{COLOUR[cls]}"{tip}><b>{mark_of(r)}</b>{shown}</td>')
        body.append(f"<tr><th class='case'><code>{html.escape(case_id)}</code></th>{''.join(cells)}</tr>")
    used = {cell_class(r) for r in doc["records"]}
    legend = "".join(
        f'<li><span style="background:{COLOUR[k]}">{html.escape(m)}</span> {html.escape(meaning)}</li>'
        for k, (m, meaning) in CLASSES.items()
        if k in used
    )
    report = (
        (
            '<p>Allure report: <a href="allure-report/index.html">by case</a>, '
            '<a href="allure-report/by-backend.html">by backend</a></p>'
        )
        if links
        else ""
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>qdq-harness results</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 6px;border:1px solid #ccc;vertical-align:top}"
        "table{border-collapse:collapse}th.case{text-align:left}.why{font-size:11px;max-width:28em}"
        "li span{padding:0 6px}</style>"
        f"<h1>qdq-harness results</h1><p>{html.escape(counts(doc))}</p>{report}{''.join(sections)}"
        f"<h2>Every case</h2><table><tr><th>case</th>{head}</tr>{''.join(body)}</table>"
        f"<h2>Legend</h2><ul>{legend}</ul>"
    )


def write(out_dir: Path, doc: dict, links: dict[tuple[str, str], str] | None = None) -> None:
    atomic_write(Path(out_dir) / "summary.md", markdown(doc).encode())
    atomic_write(Path(out_dir) / "summary.html", to_html(doc, links).encode())


def coverage(doc: dict) -> str:
    """Feature (case tag) x backend: how many cases pass, are a declared deviation, are skipped, fail. Made from a
    run's records, so the README's table says what a run showed, not what was planned."""
    tags_of = {case_id: meta.get("tags", []) for case_id, meta in doc.get("cases", {}).items()}
    backends = [b for b in doc["backends"]] + ["cross-backend"]
    cells: dict[tuple[str, str], Counter] = {}
    for r in doc["records"]:
        for tag in tags_of.get(r["case_id"], []):
            status = "bug" if r["status"] == "xfail" and r.get("override_kind") == "bug" else r["status"]
            cells.setdefault((tag, r.get("backend") or ""), Counter())[status] += 1
    tags = sorted({t for t, _ in cells})
    used = [b for b in backends if any((t, b) in cells for t in tags)]
    lines = ["| feature (tag) | " + " | ".join(used) + " |", "|---" * (len(used) + 1) + "|"]
    for tag in tags:
        row = []
        for b in used:
            c = cells.get((tag, b), Counter())
            parts = [
                f"{c[s]} {m}"
                for s, m in (
                    ("pass", "pass"),
                    ("xfail", "dev"),
                    ("bug", "bug"),
                    ("skip", "skip"),
                    ("fail", "FAIL"),
                    ("error", "ERROR"),
                )
                if c[s]
            ]
            row.append(", ".join(parts))
        lines.append(f"| {tag} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"

"""`qdq compare A B [C...]`: runs side by side, each bundle against the one before it.

Per (case, backend) the status change, classified so that a person reads the cause, not only the symptom:

| kind | meaning |
| --- | --- |
| regressed | it passed (or was a declared deviation, or skipped) and now fails or errors, the case unchanged: exit 1 |
| resolved | a declared deviation stopped happening (an upgrade fixed it?): its reason, and the case's link |
| improved | it failed and now passes |
| drifted | same status, different stored outputs (largest difference in values and in quantization steps) |
| case-changed | the case's content changed (content hash): a status change is the edit's, not the backend's |
| inputs-changed | same case, other inputs (a numpy version changed its random streams): never called drift |
| new, removed | a (case, backend) present on one side only |
| changed | any other status change (e.g. skip to pass when a backend got installed) |

Records are compared by their hashes first: stored outputs are read only where the outputs' hashes differ.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.results import bundle as bundle_mod
from harness.results import pack as pack_mod
from harness.results.bundlecheck import OutputsMissing

BAD = ("fail", "error")
ORDER = ["regressed", "resolved", "improved", "drifted", "case-changed", "inputs-changed", "new", "removed", "changed"]


@dataclass
class Change:
    case_id: str
    backend: str | None
    kind: str
    old: str | None  # status before
    new: str | None  # status after
    detail: str = ""
    max_abs: float | None = None
    max_steps: float | None = None
    link: str | None = None


@dataclass
class Comparison:
    before: str
    after: str
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    before_partial: bool = False  # a run that did not finish (killed, interrupted, disk full)
    after_partial: bool = False

    @property
    def regressed(self) -> bool:
        return any(c.kind == "regressed" for c in self.changes)

    @property
    def lost(self) -> int:
        """(case, backend) pairs missing because the later run never finished: not a silence to pass over."""
        return sum(1 for c in self.changes if c.kind == "removed") if self.after_partial else 0

    def partial_note(self) -> str | None:
        sides = [
            label
            for label, partial in ((self.before, self.before_partial), (self.after, self.after_partial))
            if partial
        ]
        if not sides:
            return None
        return (
            f"PARTIAL: {' and '.join(sides)} {'is a run' if len(sides) == 1 else 'are runs'} that did not finish "
            f"(killed, interrupted or out of disk)"
            + (f"; {self.lost} (case, backend) it never reached show as removed" if self.lost else "")
        )

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ORDER}
        for c in self.changes:
            out[c.kind] += 1
        return {k: v for k, v in out.items() if v}


def load(path: Path, scratch: Path | None = None) -> tuple[dict, Path]:
    """A bundle from its folder, its results.json (journal folded in) or a `qdq pack` archive (unpacked into a new
    folder under `scratch`, which the caller removes when done; a temporary folder the caller owns)."""
    path = given = Path(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        import tempfile

        if scratch is None:
            raise ValueError(f"{path}: a pack needs a scratch folder to be unpacked into")
        path = pack_mod.unpack(path, Path(tempfile.mkdtemp(prefix="pack-", dir=scratch)))
    folder = path.parent if path.is_file() else path
    if not (folder / "results.json").exists():
        raise FileNotFoundError(f"{path}: no results.json (a bundle folder or its results.json)")
    doc = bundle_mod.load(folder)
    doc["_label"] = str(given if given.name.endswith((".tar.gz", ".tgz")) else folder)
    return doc, folder


def _key(record: dict) -> tuple[str, str]:
    return record["case_id"], record.get("backend") or ""


def compare(before: tuple[dict, Path], after: tuple[dict, Path]) -> Comparison:
    (a, a_dir), (b, b_dir) = before, after
    result = Comparison(
        str(a.get("_label", a_dir)),
        str(b.get("_label", b_dir)),
        before_partial=bool(a.get("partial")),
        after_partial=bool(b.get("partial")),
    )
    old = {_key(r): r for r in a["records"]}
    new = {_key(r): r for r in b["records"]}
    for key in sorted(set(old) | set(new)):
        ra, rb = old.get(key), new.get(key)
        change = _classify(ra, rb, a, b, a_dir, b_dir)
        if change is None:
            result.unchanged += 1
        else:
            result.changes.append(change)
    result.changes.sort(key=lambda c: (ORDER.index(c.kind), c.case_id, c.backend or ""))
    return result


def _content(doc: dict, case_id: str) -> str | None:
    return (doc.get("cases", {}).get(case_id) or {}).get("content_hash")


def _link(doc: dict, case_id: str) -> str | None:
    return ((doc.get("cases", {}).get(case_id) or {}).get("source") or {}).get("link")


def _classify(ra: dict | None, rb: dict | None, a: dict, b: dict, a_dir: Path, b_dir: Path) -> Change | None:
    record = rb or ra
    case_id, backend = record["case_id"], record.get("backend")
    if ra is None:
        return Change(case_id, backend, "new", None, rb["status"], rb.get("reason", "")[:300])
    if rb is None:
        return Change(case_id, backend, "removed", ra["status"], None)
    sa, sb = ra["status"], rb["status"]
    ca, cb = _content(a, case_id), _content(b, case_id)
    if ca and cb and ca != cb:
        if sa == sb and ra.get("outputs_hash") == rb.get("outputs_hash"):
            return None
        return Change(case_id, backend, "case-changed", sa, sb, "the case file's content changed between the runs")
    if sa != sb:
        if rb.get("kind") == "deviation-no-longer-observed":
            return Change(case_id, backend, "resolved", sa, sb, rb.get("reason", ""), link=_link(b, case_id))
        if sb in BAD and sa not in BAD:
            detail = rb.get("reason", "")
            if backend == "cross-backend":
                detail = "new undeclared disagreement: " + detail
            return Change(case_id, backend, "regressed", sa, sb, detail[:600])
        if sa in BAD and sb not in BAD:
            return Change(case_id, backend, "improved", sa, sb, rb.get("reason", "")[:300])
        return Change(case_id, backend, "changed", sa, sb, rb.get("reason", "")[:300])
    if ra.get("outputs_hash") and rb.get("outputs_hash") and ra["outputs_hash"] != rb["outputs_hash"]:
        if ra.get("inputs_hash") != rb.get("inputs_hash"):
            return Change(
                case_id,
                backend,
                "inputs-changed",
                sa,
                sb,
                "the inputs differ (a numpy version changes random streams): outputs not comparable",
            )
        return _drift(case_id, backend, sa, sb, ra, rb, a_dir, b_dir)
    return None


def _drift(case_id, backend, sa, sb, ra, rb, a_dir: Path, b_dir: Path) -> Change:
    change = Change(case_id, backend, "drifted", sa, sb)
    try:
        oa = bundle_mod.record_outputs(a_dir, ra)
        ob = bundle_mod.record_outputs(b_dir, rb)
    except (KeyError, OutputsMissing) as exc:  # anything else a bundle claims and breaks ends the comparison
        change.detail = f"outputs differ (hash); stored outputs not there: {exc}"
        return change
    worst_abs, worst_steps, parts = 0.0, None, []
    steps = rb.get("output_steps") or {}
    for name in sorted(set(oa) & set(ob)):
        x, y = np.asarray(oa[name]).astype(np.float64), np.asarray(ob[name]).astype(np.float64)
        if x.shape != y.shape:
            parts.append(f"{name}: shape {list(x.shape)} -> {list(y.shape)}")
            worst_abs = float("inf")
            continue
        with np.errstate(invalid="ignore"):
            diff = np.where((x == y) | (np.isnan(x) & np.isnan(y)), 0.0, np.abs(x - y))
        diff = np.nan_to_num(diff, nan=np.inf)
        n, m = int((diff > 0).sum()), float(diff.max()) if diff.size else 0.0
        if not n:
            continue
        step = steps.get(name)
        s = m / step if step else None
        worst_abs = max(worst_abs, m)
        worst_steps = max(worst_steps or 0.0, s) if s is not None else worst_steps
        parts.append(
            f"{name}: {n} of {diff.size} elements moved, max |diff| {m:.6g}"
            + (f" ({s:g} step{'s' if s != 1 else ''})" if s is not None else "")
        )
    change.detail = "; ".join(parts) or "outputs differ in type or names"
    change.max_abs, change.max_steps = worst_abs, worst_steps
    return change


# --- rendering ------------------------------------------------------------------------------------------------


def _row(c: Change) -> tuple[str, ...]:
    return (
        c.kind,
        c.case_id,
        c.backend or "(file)",
        f"{c.old or '-'} -> {c.new or '-'}",
        " ".join(c.detail.split()) + (f" ({c.link})" if c.link else ""),
    )


GROUP_OVER = 3  # changes of one kind, backend and status shown one line each up to this many, then as one line


def terminal(comparisons: list[Comparison]) -> str:
    """Partial runs first, then per comparison its counts and changes: regressions one line each, other kinds with
    the same backend and status change grouped into one line when there are more than GROUP_OVER."""
    lines = [note for comp in comparisons for note in [comp.partial_note()] if note]
    for comp in comparisons:
        counts = comp.counts()
        lines.append(
            f"{comp.before} -> {comp.after}: "
            + (", ".join(f"{n} {k}" for k, n in counts.items()) or "no change")
            + f"; {comp.unchanged} unchanged"
        )
        groups: dict[tuple, list[Change]] = {}
        for c in comp.changes:
            key = (c.kind, c.backend, c.old, c.new) if c.kind != "regressed" else (c.kind, id(c))
            groups.setdefault(key, []).append(c)
        for members in groups.values():
            if len(members) > GROUP_OVER:
                kind, _, backend, status, _ = _row(members[0])
                names = ", ".join(c.case_id for c in members[:GROUP_OVER])
                lines.append(
                    f"  {kind:<14} {len(members)} cases [{backend}] {status}: {names}, ... (all of them: --md/--json)"
                )
                continue
            for c in members:
                kind, case, backend, status, detail = _row(c)
                lines.append(
                    f"  {kind.upper() if kind == 'regressed' else kind:<14} {case} [{backend}] {status}"
                    + (f": {detail}" if detail else "")
                )
    return "\n".join(lines)


MARKDOWN_SIGNATURE = "<!-- qdq compare -->"  # an invisible first line: a later --md may replace what is ours


def markdown(comparisons: list[Comparison]) -> str:
    out = [MARKDOWN_SIGNATURE]
    out += [f"> **{note}**\n" for comp in comparisons for note in [comp.partial_note()] if note]
    for comp in comparisons:
        counts = comp.counts()
        out += [
            f"### `{comp.before}` → `{comp.after}`",
            "",
            (", ".join(f"**{n} {k}**" if k == "regressed" else f"{n} {k}" for k, n in counts.items()) or "no change")
            + f"; {comp.unchanged} unchanged",
            "",
        ]
        if comp.changes:
            out += ["| change | case | backend | status | detail |", "|---|---|---|---|---|"]
            for c in comp.changes:
                kind, case, backend, status, detail = _row(c)
                out.append(
                    f"| {'**' + kind + '**' if kind == 'regressed' else kind} | `{case}` | {backend} | {status} | "
                    f"{detail.replace('|', chr(92) + '|')} |"
                )
            out.append("")
    return "\n".join(out) + "\n"


def to_html(comparisons: list[Comparison]) -> str:
    colour = {"regressed": "#f5c6c6", "resolved": "#d8f0d8", "improved": "#d8f0d8", "drifted": "#fbeec0"}
    body = []
    for comp in comparisons:
        rows = "".join(
            f"<tr style='background:{colour.get(c.kind, '#fff')}'>"
            + "".join(f"<td>{html.escape(v)}</td>" for v in _row(c))
            + "</tr>"
            for c in comp.changes
        )
        counts = ", ".join(f"{n} {k}" for k, n in comp.counts().items()) or "no change"
        body.append(
            f"<h2>{html.escape(comp.before)} &rarr; {html.escape(comp.after)}</h2>"
            f"<p>{html.escape(counts)}; {comp.unchanged} unchanged</p>"
            f"<table><tr><th>change</th><th>case</th><th>backend</th><th>status</th><th>detail</th></tr>{rows}</table>"
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>qdq compare</title><style>body{font-family:sans-serif}"
        "td,th{padding:2px 6px;border:1px solid #ccc;vertical-align:top}table{border-collapse:collapse}</style>"
        "<h1>qdq compare</h1>" + "".join(body)
    )


def to_json(comparisons: list[Comparison]) -> str:
    return json.dumps(
        [
            {
                "before": c.before,
                "after": c.after,
                "counts": c.counts(),
                "unchanged": c.unchanged,
                "regressed": c.regressed,
                "before_partial": c.before_partial,
                "after_partial": c.after_partial,
                "lost": c.lost,
                "changes": [asdict(x) for x in c.changes],
            }
            for c in comparisons
        ],
        indent=1,
    )

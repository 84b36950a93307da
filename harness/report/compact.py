"""The Allure results the HTML report is made from: a compact copy of DIR/allure-results (which stays complete, for
anyone who runs their own Allure).

A single-file Allure report embeds every result several times over (the result, the tree, the search index), about
8 KB each: the full suite's 3,200 results made two 38 MB pages, most of it skips that say the same thing per
backend. In the copy:
- every skip of one backend for one reason (its typed kind) is one result naming how many cases and which, so the
  report still shows each backend that did not run and why, with its count; every skip stays, case by case, in
  results.json and summary.html;
- results keep the labels a person groups or filters by (epic, feature, story, tag, severity, backend, version),
  not the ones allure-pytest adds about the machine and the Python module (host, thread, package, ...);
- the cross-backend results that passed (every pair of backends agreed) are one result listing the cases, as skips
  are; a cross-backend disagreement stays a result of its own;
- a case family with more than PASS_GROUP passes on one backend (the generated sweeps: cases/coverage holds 200 per
  backend) shows them as one passing result per backend listing the cases; smaller families keep one result per
  case;
- a declared deviation keeps its case file and refusal but not its repro script (`qdq repro` writes it; failures and
  errors keep theirs);
- a passing result keeps the first paragraph of its description (the case and its file); failures and deviations
  keep everything, and each attachment they name is copied once per distinct content (the case file attached to
  the deviations of several backends is embedded once).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from pathlib import Path

from harness.engine.run import CROSS_BACKEND
from harness.engine.skips import SKIP_KINDS

KEPT_LABELS = {"epic", "feature", "story", "tag", "severity", "backend", "version"}
_KIND = re.compile(r"\[([a-z-]+)\]")
MAX_LISTED = 400  # cases named in one group's description (the rest counted)
PASS_GROUP = 50  # passes of one case family on one backend above which they are shown as one result


def _skip_kind(result: dict) -> str:
    found = _KIND.search((result.get("statusDetails") or {}).get("message") or "")
    return found.group(1) if found and found.group(1) in SKIP_KINDS else "other"


def _label(result: dict, name: str) -> str:
    return next((lab["value"] for lab in result.get("labels", []) if lab.get("name") == name), "")


def _copy_attachments(result: dict, results: Path, target: Path) -> None:
    """Each attachment under a name of its content: equal files become one, embedded once."""
    for holder in [result, *result.get("steps", [])]:
        for attachment in holder.get("attachments", []):
            source = results / attachment.get("source", "")
            if not attachment.get("source") or not source.is_file():
                continue
            data = source.read_bytes()
            name = hashlib.sha256(data).hexdigest()[:32] + "-attachment" + source.suffix
            if not (target / name).exists():
                (target / name).write_bytes(data)
            attachment["source"] = name


def compact(results: Path, target: Path) -> dict[str, int]:
    """Write the compact copy of `results` into `target` (created afresh); returns counts for the log."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    groups: dict[tuple[str, str], list[dict]] = {}
    agreed: list[dict] = []
    kept = 0
    loaded = []
    for path in sorted(results.glob("*-result.json")):
        try:
            loaded.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # a result file cut short (a killed worker): Allure would skip it too
    passes = Counter((_label(r, "feature"), _label(r, "backend")) for _, r in loaded if r.get("status") == "passed")
    families: dict[tuple[str, str], list[dict]] = {}
    for name, result in loaded:
        status, backend = result.get("status"), _label(result, "backend")
        if status == "skipped":
            groups.setdefault((backend, _skip_kind(result)), []).append(result)
            continue
        if status == "passed" and backend == CROSS_BACKEND:
            agreed.append(result)
            continue
        if status == "passed" and passes[(_label(result, "feature"), backend)] > PASS_GROUP:
            families.setdefault((_label(result, "feature"), backend), []).append(result)
            continue
        result["labels"] = [lab for lab in result.get("labels", []) if lab.get("name") in KEPT_LABELS]
        if status == "passed" and result.get("description"):
            result["description"] = result["description"].split("\n\n")[0]
        if status == "unknown":  # a declared deviation: the repro script is `qdq repro`'s to write
            result["attachments"] = [
                a for a in result.get("attachments", []) if not str(a.get("name", "")).startswith("repro-")
            ]
        _copy_attachments(result, results, target)
        (target / name).write_text(json.dumps(result), encoding="utf-8")
        kept += 1
    for (feature, backend), members in sorted(families.items()):
        _write_passes(target, feature, backend, members)
    for (backend, kind), members in sorted(groups.items()):
        _write_group(target, backend, kind, members)
    if agreed:
        _write_agreement(target, agreed)
    for extra in ("categories.json", "environment.properties", "executor.json"):
        if (results / extra).is_file():
            shutil.copyfile(results / extra, target / extra)
    return {
        "results": kept,
        "skip groups": len(groups),
        "skips": sum(len(m) for m in groups.values()),
        "agreements": len(agreed),
        "grouped passes": sum(len(m) for m in families.values()),
    }


def _write_grouped(target: Path, identity: str, members: list[dict], labels: list[dict], **fields) -> None:
    """One Allure result standing for `members`: a stable id from `identity` (history continues across runs), the
    members' time span, and the given labels and fields (name, status, description, ...)."""
    key = hashlib.md5(identity.encode()).hexdigest()
    result = {
        **fields,
        "uuid": key,
        "historyId": key,
        "testCaseId": key,
        "start": min(r.get("start", 0) for r in members),
        "stop": max(r.get("stop", 0) for r in members),
        "labels": labels,
    }
    (target / f"{key}-result.json").write_text(json.dumps(result), encoding="utf-8")


def _write_passes(target: Path, feature: str, backend: str, members: list[dict]) -> None:
    cases = sorted(_label(r, "story") or r.get("name", "") for r in members)
    version = _label(members[0], "version")
    epics = {_label(r, "epic") for r in members}
    _write_grouped(
        target,
        f"passes {feature} {backend}",
        members,
        [
            {"name": "epic", "value": epics.pop() if len(epics) == 1 else "several documents"},
            {"name": "feature", "value": feature},
            {"name": "story", "value": f"{feature}: passes on {backend}"},
            {"name": "backend", "value": backend},
            *([{"name": "version", "value": version}] if version else []),
        ],
        name=f"{backend}: {len(members)} case(s) of {feature} passed",
        status="passed",
        description="\n".join([f"Each held its expectation on `{backend}`:", ""] + [f"- `{c}`" for c in cases]),
        fullName=f"passes.{feature}.{backend}",
    )


def _write_agreement(target: Path, members: list[dict]) -> None:
    cases = sorted(_label(r, "story") or r.get("name", "") for r in members)
    _write_grouped(
        target,
        "cross-backend agreements",
        members,
        [
            {"name": "epic", "value": "cross-backend agreements"},
            {"name": "feature", "value": CROSS_BACKEND},
            {"name": "story", "value": "every pair agreed"},
            {"name": "backend", "value": CROSS_BACKEND},
        ],
        name=f"{CROSS_BACKEND}: {len(members)} case(s) where every pair of backends agreed",
        status="passed",
        description="\n".join(
            ["Every pair of backends that ran these cases agreed within the case's tolerance:", ""]
            + [f"- `{case}`" for case in cases]
        ),
        fullName=f"{CROSS_BACKEND}.agreements",
    )


def _write_group(target: Path, backend: str, kind: str, members: list[dict]) -> None:
    label = SKIP_KINDS.get(kind, kind)
    reasons: dict[str, list[str]] = {}
    for r in members:
        message = (r.get("statusDetails") or {}).get("message") or ""
        reasons.setdefault(message.removeprefix("Skipped: "), []).append(_label(r, "story") or r.get("name", ""))
    lines = [
        f"{len(members)} case(s) not run on `{backend or 'unknown'}`: {label}. Each is in results.json and summary.html."
    ]
    listed = 0
    for reason, cases in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"\n**{reason}** ({len(cases)}):\n")
        for case in sorted(cases):
            if listed >= MAX_LISTED:
                break
            lines.append(f"- `{case}`")
            listed += 1
    if listed < len(members):
        lines.append(f"\n... and {len(members) - listed} more (results.json lists every one)")
    first = members[0]
    version = _label(first, "version")
    _write_grouped(
        target,
        f"skips {backend} {kind}",
        members,
        [
            {"name": "epic", "value": "skipped cases"},
            {"name": "feature", "value": label},
            {"name": "story", "value": f"{backend}: {label}"},
            {"name": "backend", "value": backend},
            *([{"name": "version", "value": version}] if version else []),
        ],
        name=f"{backend}: {len(members)} case(s) skipped, {label}",
        status="skipped",
        statusDetails={"message": (first.get("statusDetails") or {}).get("message", "")},
        description="\n".join(lines),
        fullName=f"skipped.{backend}.{kind}",
    )

"""A sharded run's bundle: `qdq run -n N` runs N pytest processes side by side, the K-th writing the bundle of its
share of the cases to DIR/shards/K (its log beside it, DIR/shards/K.log). `merge` makes DIR/results.json of them all.

When every share finished, their outputs move up to DIR/outputs (no name can clash: a case is in one share only and
each process's pack carries its pid) and the share folders go; records then read exactly as an unsharded run's. A
partial run keeps the share folders (`qdq run --resume` continues each one) and its merged records name the outputs
where they lie, DIR/shards/K/outputs/...
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harness.results.bundle import finalise, load, write_json

SHARDS = "shards"
PLAN = "plan.json"


def folders(out: Path, count: int) -> list[Path]:
    return [Path(out) / SHARDS / str(k) for k in range(1, count + 1)]


def log_file(folder: Path) -> Path:
    return folder.with_suffix(".log")


def write_plan(out: Path, count: int) -> None:
    (Path(out) / SHARDS).mkdir(parents=True, exist_ok=True)
    (Path(out) / SHARDS / PLAN).write_text(json.dumps({"count": count}) + "\n")


def planned_count(out: Path) -> int | None:
    """How many shares the run in `out` was started with (None: it was not sharded, or no plan can be read)."""
    try:
        count = json.loads((Path(out) / SHARDS / PLAN).read_text())["count"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return count if isinstance(count, int) and count >= 2 else None


def exit_status(codes: list[int]) -> int:
    """One pytest exit status for the shares: a share with no cases (5) counts only when every share had none;
    otherwise the gravest: usage error 4, internal error 3, interrupted 2, failed 1 (a share killed counts as 1)."""
    ran = [c for c in codes if c != 5] or [5]
    for grave in (4, 3, 2, 1):
        if grave in ran:
            return grave
    return 1 if any(c < 0 for c in ran) else max(ran)


def merge(out: Path, parts: list[Path]) -> dict | None:
    """DIR/results.json from the shares' bundles; None when no share wrote one."""
    out = Path(out)
    docs = [(part, load(part)) for part in parts if (part / "results.json").exists()]
    if not docs:
        return None
    complete = len(docs) == len(parts) and not any(doc.get("partial") for _, doc in docs)
    merged = {k: v for k, v in docs[0][1].items() if not k.startswith("_")}
    merged.update(records=[], cases={}, case_files={}, diffs=[], shards=len(parts))
    for part, doc in docs:
        moved = complete and _move_outputs(part / "outputs", out / "outputs")
        prefix = "" if moved else part.relative_to(out).as_posix() + "/"
        for record in doc["records"]:
            if prefix and record.get("outputs_file"):
                record = {**record, "outputs_file": prefix + record["outputs_file"]}
            merged["records"].append(record)
        merged["cases"].update(doc.get("cases", {}))
        merged["case_files"].update(doc.get("case_files", {}))
        merged["diffs"].extend(doc.get("diffs", []))
        if doc.get("stopped") and not merged.get("stopped"):
            merged["stopped"] = doc["stopped"]
    finalise(merged)
    finished = [doc.get("finished") for _, doc in docs]
    merged["started"] = min(doc.get("started") or "" for _, doc in docs) or None
    merged["finished"] = None if None in finished or len(docs) < len(parts) else max(finished)
    merged["exit_status"] = exit_status(
        [doc["exit_status"] for _, doc in docs if isinstance(doc.get("exit_status"), int)]
    )
    merged["partial"] = not complete
    write_json(out / "results.json", merged)
    if complete:
        for part in parts:
            shutil.rmtree(part, ignore_errors=True)  # its outputs moved up, its records are in DIR/results.json
    return merged


def _move_outputs(source: Path, target: Path) -> bool:
    """Every file under `source` to the same place under `target`; False (nothing moved) if any would replace one."""
    files = [Path(root, name) for root, _, names in os.walk(source) for name in names]
    moves = [(f, target / f.relative_to(source)) for f in files]
    if any(os.path.lexists(dst) for _, dst in moves):
        return False
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
    return True

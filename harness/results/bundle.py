"""The results bundle every run writes: `DIR/results.json` and `DIR/outputs/<case-id>/<backend>.npz`.

results.json (schema_version 1) holds the run's start and end, whether it is partial, the versions of every
backend, the harness and Python, each case file's content hash, one record per (case, backend) and the
cross-backend diffs. It is rewritten atomically (temporary file + rename) now and then while the run goes on, and
once at its end.

journal.jsonl is the crash-safe path: one line appended (and flushed to the OS) the moment an item starts and the
moment its record is made, so a SIGKILL loses nothing finished; a run that completes removes it. `load(DIR)` folds
the journal into results.json: readers always see every finished item, partial or not. `qdq run` resumes from it
after its pytest process died.

DIR/.lock is held (flock) by the run writing the bundle: a second run into the same folder is refused.

Outputs: each record with outputs names where they are. Small ones (up to PACK_LIMIT bytes) are appended to the
writing process's own pack, `outputs/<process>.npzpack`, at `outputs_range` [offset, length]: one file per process,
not one file and folder per item (on the 2-core benchmark machine, creating those was a third of a 10,000-case run,
and two xdist workers creating them in one folder waited on each other). Larger ones stay files of their own, written
without a second copy in memory: a case id becomes a path one-to-one and provably inside `outputs/` (see
`path_safe_id`): `rules/axis::bad::axis=4` -> `outputs/rules/axis/@bad/@axis=4/<backend>.npz`. Either way the bytes are one .npz: one array per output; types numpy
lacks (INT4, FP8, FP4, BF16) are stored as their bit patterns (uint8/uint16), and the entry `__dtypes__` (a JSON
string) names every output's type so `record_outputs(DIR, record)` restores them. Loaded with `allow_pickle=False`.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness import __version__


from harness.cases import limits

from harness.results.outputs import (  # where outputs are kept; re-exported: a bundle's readers use them here
    OutputStore as OutputStore,
    arrays_hash as arrays_hash,
    atomic_write as atomic_write,
    decode_npz as decode_npz,
    encode_npz as encode_npz,
    load_outputs as load_outputs,
    outputs_path as outputs_path,
    path_safe_id as path_safe_id,
    record_outputs as record_outputs,
    save_outputs as save_outputs,
)

SCHEMA_VERSION = 1


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version(), "platform": platform.platform(), "harness": __version__}
    for pkg in (
        "numpy",
        "ml_dtypes",
        "pyyaml",
        "jsonschema",
        "pytest",
        "pytest-xdist",
        "allure-pytest",
    ):  # the engine's own; backends report theirs
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    return env


def out_dir_problem(out: Path) -> str | None:
    """Why a bundle cannot be written to `out` (one line), or None."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder"
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        return f"--out {out}: {probe} is not writable"
    return None


class BundleInUse(RuntimeError):
    pass


def lock(out_dir: Path):
    """An open file holding an exclusive flock on DIR/.lock (released when closed or when the process dies)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    f = open(out_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise BundleInUse(
            f"{out_dir} is in use by another run ({holder}); wait for it or choose another --out"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}, started {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
    f.flush()
    return f


class BundleWriter:
    """Collects records on the controller: each one appended to the journal at once, results.json rewritten now and
    then and at the end. `resume=True` continues the bundle of a run whose process died."""

    FLUSH_EVERY_S = 30.0  # results.json between the journal and the end: a convenience, the journal is the truth

    def __init__(
        self,
        out_dir: Path,
        backends: dict[str, dict],
        argv: list[str] | None = None,
        resume: bool = False,
        run_config: dict | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        previous = load(self.out_dir) if resume and (self.out_dir / "results.json").exists() else None
        self.doc = {
            "schema_version": SCHEMA_VERSION,
            "partial": True,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "finished": None,
            "exit_status": None,
            "argv": argv or sys.argv,
            "harness_version": __version__,
            "environment": environment(),
            "run_config": run_config or {},
            "backends": backends,
            "case_files": {},
            "cases": {},
            "records": [],
            "diffs": [],
        }
        if previous is not None:
            for key in ("started", "case_files", "cases", "records", "diffs", "_sources"):
                if key in previous:
                    self.doc[key] = previous[key]
            self.doc["resumed"] = previous.get("resumed", 0) + 1
        self.journal = open(self.out_dir / JOURNAL, "a" if previous is not None else "w", encoding="utf-8")
        self._last_flush = 0.0
        self.disk_full: str | None = None  # why writing stopped: the run ends, partial, and says so
        self.flush()

    def recorded(self) -> set[str]:
        return {r["nodeid"] for r in self.doc["records"] if r.get("nodeid")}

    def started(self, nodeid: str) -> None:
        self._journal({"event": "start", "nodeid": nodeid})

    def add(self, record: dict, text: str | None = None) -> None:
        """`text`: the record as JSON already (as it came from a worker), written to the journal as it is."""
        if text is not None and text.startswith("{") and len(text) > 2:
            self._write_journal('{"event": "record", ' + text[1:] + "\n")
        else:
            self._journal({"event": "record", **record})
        _fold(self.doc, record)
        if time.monotonic() - self._last_flush > self.FLUSH_EVERY_S:
            self.flush()

    def _journal(self, entry: dict) -> None:
        self._write_journal(json.dumps(entry, default=json_default) + "\n")

    def _write_journal(self, line: str) -> None:
        try:
            self.journal.write(line)
            self.journal.flush()  # in the OS's hands: survives this process being killed
        except OSError as exc:
            self._full(exc)

    def _full(self, exc: OSError) -> None:
        """A write that failed for lack of room is the end of the run (kept partial), not a crash."""
        from harness.results.budget import disk_full

        if not disk_full(exc):
            raise exc
        self.disk_full = f"disk full writing {self.out_dir}"

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        try:
            write_json(self.out_dir / "results.json", self.doc)
        except OSError as exc:
            self._full(exc)

    def finish(self, exit_status: int, complete: bool) -> None:
        finalise(self.doc)
        self.doc["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.doc["exit_status"] = exit_status
        complete = complete and not self.disk_full  # a journal line may be missing: never called complete
        self.doc["partial"] = not complete
        if self.disk_full:
            self.doc["stopped"] = self.disk_full
        self.flush()
        try:
            self.journal.close()
        except OSError as exc:
            self._full(exc)
        if (
            complete and not self.disk_full
        ):  # results.json holds all of it now (`load` reads the journal of a partial bundle only)
            (self.out_dir / JOURNAL).unlink(missing_ok=True)


JOURNAL = "journal.jsonl"


def _fold(doc: dict, record: dict) -> None:
    """One journal record into a results document (the same path for the writer and for `load`)."""
    record = dict(record)
    record.pop("event", None)
    source = record.pop("source", None)
    if source:  # where the case file is: for the cross-backend diff of this process or a resumed one; never written
        doc.setdefault("_sources", {})[record["case_id"]] = (source["path"], source["root"])
    case = record.pop("case", None)
    if case:
        doc["cases"].setdefault(record["case_id"], case)
        doc["case_files"][case["file"]] = case["file_hash"]
    diffs = record.pop("diffs", None)
    if diffs:
        doc["diffs"].extend(diffs)
    doc["records"].append(record)


def finalise(doc: dict) -> None:
    # One record per item: an item xdist re-ran after a worker crash keeps its last record.
    last = {r.get("nodeid") or id(r): r for r in doc["records"]}
    doc["records"] = sorted(last.values(), key=lambda r: (r["case_id"], r.get("backend") or ""))


def journal_entries(out_dir: Path) -> list[dict]:
    """Every complete line of the journal (a line cut by a kill is ignored)."""
    from harness.results.bundlecheck import read_regular

    path = Path(out_dir) / JOURNAL
    if not path.exists():
        return []
    entries = []
    for line in read_regular(path, limits.MAX_RESULTS_BYTES, "the journal").decode("utf-8", "replace").splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def load(out_dir: Path) -> dict:
    """A bundle as readers should see it: results.json, with every journal record it does not hold yet folded in
    (after a kill, results.json may lag the journal)."""
    from harness.results.bundlecheck import check_document, results_document

    out_dir = Path(out_dir)
    doc = results_document(out_dir / "results.json")
    if not doc.get("partial"):
        return doc
    have = {r.get("nodeid") for r in doc["records"]}
    for entry in journal_entries(out_dir):
        if entry.get("event") != "record" or not isinstance(entry.get("case_id"), str):
            continue
        try:
            if entry.get("nodeid") not in have:
                _fold(doc, entry)
                have.add(entry.get("nodeid"))
            elif entry.get("source"):
                doc.setdefault("_sources", {})[entry["case_id"]] = (entry["source"]["path"], entry["source"]["root"])
        except (KeyError, TypeError, AttributeError, IndexError):
            continue  # a damaged line counts as a line cut by a kill
    finalise(doc)
    check_document(doc, out_dir / JOURNAL)
    return doc


def unfinished(out_dir: Path) -> list[str]:
    """Items the journal saw start and never saw recorded: what a dead process was running."""
    started, done = [], set()
    for entry in journal_entries(out_dir):
        if entry.get("event") == "start":
            started.append(entry["nodeid"])
        elif entry.get("event") == "record":
            done.add(entry.get("nodeid"))
    return [n for n in dict.fromkeys(started) if n not in done]


def append_record(out_dir: Path, record: dict) -> None:
    """A record written by someone other than the run (the `qdq run` driver, for an item its pytest died in)."""
    with open(Path(out_dir) / JOURNAL, "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": "record", **record}, default=json_default) + "\n")


def write_json(path: Path, doc: dict) -> None:
    """Atomically, readable by everyone (0644 under the usual umask, like every other file of the bundle)."""
    public = {k: v for k, v in doc.items() if not k.startswith("_")}
    # Compact: json's C encoder (an indent would select the pure-Python one, a third of a large run's time).
    atomic_write(path, json.dumps(public, separators=(",", ":"), default=json_default).encode())


def json_default(obj):
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, Path):
        return obj.as_posix()
    return str(obj)

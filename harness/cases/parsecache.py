"""Case files parsed once, remembered across runs and processes: `check_file(..., cache=ParseCache(db))`.

What is kept is the work before a case is built (YAML, line numbers, `matrix:` expansion, `${}` substitution, the
JSON Schema), as JSON in one SQLite file, never a pickle. A hit still builds every `Case` afresh
(`harness/cases/build.py`), so data files and every structural check are read and made again, and a file with any problem
is never kept: its problems always come from a full read.

An entry is trusted by the case file's stat (size, mtime, ctime, inode), as git trusts its index, and by the same
rule for "racily clean" files: a file changed within a second or two of the entry being made may share its
timestamps with a later edit of the same size, so such an entry is checked against the file's SHA-256 instead.
"Changed" is the later of mtime and ctime: `cp -p` and `rsync -a` put an old mtime back, the kernel's ctime they
cannot. An entry is kept only under the stat of the very file its bytes were read from (taken from the open file
before reading) and only when the path still shows that stat after the read: a file replaced while it was read
is not kept, so no entry ever pairs one content with another file's stat.
Entries are also bound to the loader's own source code and to the cases root (case ids are paths under it).

Every failure (a read-only or full disk, a locked or damaged database) only means a miss: the cache can make a run
slower, never different. New entries are written in batches, one transaction each (one file per entry cost up to
0.8 ms to create on this kind of disk); processes sharing the database (xdist workers) wait for each other's
transactions, never read half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

FORMAT = 1
RACY_NS = 2_000_000_000  # FAT's 2 s timestamps are the coarsest a case folder is likely to sit on
BATCH = 1000  # entries held before they are written
_SOURCES = (
    "parsecache.py",
    "load.py",
    "build.py",
    "problems.py",
    "schemacheck.py",
    "yamlread.py",
    "case.py",
    "numbers.py",
    "limits.py",
    "shapes.py",
    "dtypes.py",
    "../schema/case.schema.json",
)


def _loader_fingerprint() -> str:
    here = Path(__file__).parent
    digest = hashlib.sha256(f"format {FORMAT}".encode())
    for name in _SOURCES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()[:20]


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class ParseCache:
    """One SQLite database of entries, keyed by the case file's absolute path."""

    def __init__(self, database: Path):
        self.database = Path(database)
        self.fingerprint = _loader_fingerprint()
        self._db = None
        self._broken = False
        self._pending: list[tuple[str, str]] = []

    def _connection(self):
        if self._db is None and not self._broken:
            try:
                import sqlite3

                self.database.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.database, timeout=10, isolation_level=None)
                db.execute("CREATE TABLE IF NOT EXISTS entries (path TEXT PRIMARY KEY, entry TEXT)")
                self._db = db
            except Exception:  # no sqlite3 module, a read-only disk, not a database: run without the cache
                self._broken = True
        return self._db

    def get(self, path: Path, root: Path) -> dict | None:
        """The entry of an unchanged file, else None."""
        try:
            db = self._connection()
            if db is None:
                return None
            st = os.stat(path)
            row = db.execute("SELECT entry FROM entries WHERE path = ?", (os.path.abspath(path),)).fetchone()
            if row is None:
                return None
            entry = json.loads(row[0])
            if entry["fingerprint"] != self.fingerprint or entry["root"] != str(root) or entry["stat"] != _stat_key(st):
                return None
            if entry["racy"]:
                with open(path, "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() != entry["sha256"]:
                        return None
            return entry
        except Exception:  # OSError, sqlite3.Error, a damaged entry: a miss
            return None

    def put(
        self,
        path: Path,
        root: Path,
        data: bytes,
        lines: dict[tuple, int],
        cases: list[dict],
        read_stat: os.stat_result | None,
    ) -> None:
        """Keep a file read without problems: `data` its bytes as read, `read_stat` the stat of the open file they
        came from, `cases` each case's id, params, line prefix and expanded body. An entry of a file that changed
        since (or may have) is checked by content when used."""
        if self._broken or read_stat is None:
            return
        try:
            st = os.stat(path)
            if _stat_key(st) != _stat_key(read_stat):  # replaced or written while read: keep nothing
                return
            changed = max(st.st_mtime_ns, st.st_ctime_ns)
            entry = {
                "fingerprint": self.fingerprint,
                "root": str(root),
                "stat": _stat_key(st),
                "sha256": hashlib.sha256(data).hexdigest(),
                "racy": time.time_ns() - changed < RACY_NS or st.st_size != len(data),
                "lines": [[list(k), v] for k, v in lines.items()],
                "cases": cases,
            }
            # No `default=`: a value JSON would not give back as it was (a YAML date, set or bytes) raises TypeError,
            # and that file is not kept. Keys are text (yamlread refuses others); YAML makes no tuples.
            self._pending.append((os.path.abspath(path), json.dumps(entry, separators=(",", ":"))))
        except (OSError, ValueError, TypeError):
            return
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Write the entries held, in one transaction."""
        pending, self._pending = self._pending, []
        self._write("INSERT OR REPLACE INTO entries VALUES (?, ?)", pending)

    def prune(self) -> None:
        """Entries of case files that no longer exist (a temporary folder of cases) are removed."""
        try:
            db = self._connection()
            gone = [(p,) for (p,) in db.execute("SELECT path FROM entries") if not os.path.exists(p)] if db else []
        except Exception:
            return
        self._write("DELETE FROM entries WHERE path = ?", gone)

    def _write(self, statement: str, rows: list[tuple]) -> None:
        """One transaction (another process's waits for it); any failure is a write not made."""
        db = self._connection()
        if not rows or db is None:
            return
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(statement, rows)
        except Exception:
            return

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

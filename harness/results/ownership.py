"""Folders the harness writes into and may clear: only its own.

`qdq run --out DIR` clears DIR's outputs, reports and previous run; `qdq import -o DIR` writes case files over the
ones there. Both may do it only in a folder that is new, empty, or marked as theirs by a marker file they wrote
(`--force` says the user knows better). Anything else is refused before a byte is written: never delete or
overwrite what the harness did not write.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from harness import __version__

BUNDLE_MARKER = ".qdq-bundle"
IMPORT_MARKER = ".qdq-import"


def _legacy_bundle(folder: Path) -> bool:
    """A bundle written before the marker existed: its results.json names the harness and the bundle schema."""
    results = folder / "results.json"
    try:
        if not results.is_file() or results.stat().st_size > 64 << 20:
            return False
        with open(results, "rb") as f:
            head = f.read(4096)
        return head.startswith(b"{") and b'"schema_version"' in head and b'"harness_version"' in head
    except OSError:
        return False


def _empty_folder(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


def problem(folder: Path, marker: str, what: str, option: str) -> str | None:
    """Why the harness may not write `what` into `folder` (one line), or None."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{option} {folder} is a file, not a folder"
    try:
        # An empty folder holds nothing to lose (pytest's --alluredir makes its folder before the run starts).
        entries = [e for e in os.listdir(folder) if e != ".lock" and not _empty_folder(folder / e)]
    except OSError as exc:
        return f"{option} {folder}: cannot list it ({exc.strerror or exc})"
    if not entries or marker in entries:
        return None
    if marker == BUNDLE_MARKER and _legacy_bundle(folder):
        return None
    return (
        f"{option} {folder} holds files the harness did not write (no {marker} marker); it would replace or "
        f"remove them. Choose an empty or new folder for {what}, or pass --force"
    )


def claim(folder: Path, marker: str, command: str) -> None:
    """Mark `folder` as written by the harness (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    note = {
        "written_by": command,
        "harness_version": __version__,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (folder / marker).write_text(json.dumps(note) + "\n")


def file_problem(path: Path, is_ours, what: str) -> str | None:
    """Why writing `what` to `path` would overwrite a file the harness did not write, or None: a new path, or a
    regular file `is_ours(path)` recognises (our own signature in it). Unreadable counts as not ours."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():
        return f"{path} exists and is not a regular file; choose another path for {what}"
    try:
        ours = bool(is_ours(path))
    except Exception:
        ours = False
    if ours:
        return None
    return f"{path} exists and was not written by qdq-harness; choose another path for {what}, or pass --force"


def text_starts_with(*signatures: str):
    """An `is_ours` for text files whose first bytes are one of `signatures`."""

    def check(path: Path) -> bool:
        with open(path, "rb") as f:
            head = f.read(512).decode("utf-8", "replace")
        return any(head.startswith(s) for s in signatures)

    return check

"""The run's output budget and the disk it writes to.

One case file that passes every limit can still ask a run for terabytes (10,000 matrix cases, each with a 2^26-element
output). The run has a budget of stored output bytes (`--output-budget`, default `limits.OUTPUT_BUDGET_BYTES` or half
the free disk, whichever is less): a case whose outputs do not fit is that case's error, and the rest runs.

Every pytest process of a run (xdist workers too) stores outputs, so the budget is one ledger in the bundle folder,
`DIR/.output-budget` (JSON {budget, used}), changed under an flock; each process takes slices of it (SLICE bytes or
what one output needs) so that the lock is taken about once per 64 MiB, not once per case.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path

from harness.cases import limits

LEDGER = ".output-budget"
SLICE = 64 << 20


class OutputBudgetExceeded(Exception):
    pass


def default_budget(out_dir: Path) -> int:
    try:
        free = shutil.disk_usage(out_dir).free
    except OSError:
        return limits.OUTPUT_BUDGET_BYTES
    return max(min(limits.OUTPUT_BUDGET_BYTES, free // 2), 0)


def start(out_dir: Path, budget: int | None, resume: bool) -> int:
    """The controller's ledger at the start of a run (a resumed run keeps what was used); returns the budget."""
    path = Path(out_dir) / LEDGER
    if resume and path.exists():
        try:
            held = json.loads(path.read_text())
            if budget is not None:
                held["budget"] = budget
            path.write_text(json.dumps(held))
            return int(held["budget"])
        except (ValueError, KeyError, TypeError, OSError):
            pass
    budget = default_budget(out_dir) if budget is None else budget
    path.write_text(json.dumps({"budget": budget, "used": 0}))
    return budget


class Allowance:
    """One process's share of the ledger."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LEDGER
        self.left = 0

    def take(self, nbytes: int) -> None:
        """Room for `nbytes` more stored bytes, else OutputBudgetExceeded (nothing taken)."""
        if nbytes <= self.left:
            self.left -= nbytes
            return
        need = nbytes - self.left
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:  # no ledger (a bundle writer that is not a run): the default budget, unshared
            self.left = max(limits.OUTPUT_BUDGET_BYTES - need, 0)
            return
        with os.fdopen(fd, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            held = json.loads(f.read() or "{}")
            budget, used = int(held.get("budget", limits.OUTPUT_BUDGET_BYTES)), int(held.get("used", 0))
            want = max(need, SLICE)
            if used + want > budget:
                want = need
            if used + want > budget:
                raise OutputBudgetExceeded(
                    f"the run's output budget of {budget:,} bytes is spent ({used:,} used); {nbytes:,} more do not "
                    "fit (qdq run --output-budget SIZE)"
                )
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"budget": budget, "used": used + want}))
            f.flush()
        self.left += want - nbytes


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def low_on_disk(folder: Path) -> str | None:
    """Why a run should stop before writing more into `folder` (less than the reserve free), or None."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < limits.DISK_RESERVE_BYTES:
        return f"disk full writing {folder}: {free:,} bytes free, under the reserve of {limits.DISK_RESERVE_BYTES:,}"
    return None


def parse_size(text: str) -> int:
    """`8G`, `512M`, `100k`, `1000` (bytes; binary units) -> bytes. ValueError on anything else."""
    text = text.strip()
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    number, unit = (text[:-1], text[-1].lower()) if text and text[-1].lower() in "kmgt" else (text, "")
    value = float(number)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"not a size: {text!r}")
    return int(value * units[unit])

"""A bundle as one `.tar.gz` (`qdq pack`), for a bug report or `qdq compare` on another machine, and back."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.results.bundle import json_default, load


PACKED = ("results.json", "summary.md", "summary.html", "history.jsonl", "outputs")


def pack(out_dir: Path, target: Path, with_report: bool = False) -> Path:
    """One .tar.gz of a bundle, for a bug report or for `qdq compare` on another machine: results.json (with the
    journal folded in), the outputs and summaries; the HTML report too when asked."""
    import io
    import tarfile

    out_dir, target = Path(out_dir), Path(target)
    doc = load(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        data = json.dumps(doc, indent=1, default=json_default).encode()
        info = tarfile.TarInfo("bundle/results.json")
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
        for name in PACKED[1:] + (("allure-report",) if with_report else ()):
            if (out_dir / name).exists():
                tar.add(out_dir / name, arcname=f"bundle/{name}")
    return target


def is_pack(path: Path) -> bool:
    """Whether `path` is an archive `pack` wrote (its first member is bundle/results.json): one it may replace."""
    import tarfile

    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
            return first is not None and first.name == "bundle/results.json"
    except (tarfile.TarError, OSError, EOFError):
        return False


def unpack(archive: Path, into: Path) -> Path:
    """A packed bundle extracted safely: sizes checked first, then tarfile's `data` filter (no links out, no
    absolute paths, no devices); see harness/results/bundlecheck.py."""
    from harness.results.bundlecheck import safe_extract

    return safe_extract(Path(archive), Path(into))

"""`qdq matrix` says where it is: one line as each version starts and one with its counts and time when it ends."""

from __future__ import annotations

import sys

from harness.cli import matrix


def test_each_version_reports_its_start_and_its_counts(tmp_path):
    spec = {"requirements": [], "backends": ["numpy"]}
    envs = [matrix.Environment("fake", v, spec) for v in ("1.0", "2.0")]
    for env in envs:  # a made environment: the running interpreter, marked complete
        folder = tmp_path / "cache" / "venvs" / f"{env.name}-py{sys.version_info[0]}.{sys.version_info[1]}"
        (folder / "bin").mkdir(parents=True)
        python = folder / "bin" / "python"
        python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        python.chmod(0o755)
        (folder / ".qdq-complete").write_text("{}")
    lines: list[str] = []
    results = matrix.run(
        envs, ["cases/docs/s1-per-tensor-int8.yaml"], tmp_path / "m", tmp_path / "cache", [], log=lines.append
    )
    assert [env.name for env, _, _ in results] == ["fake-1.0", "fake-2.0"]
    assert lines[0] == "[1/2] fake-1.0" and "[2/2] fake-2.0" in lines
    ends = [ln for ln in lines if ln.startswith("[1/2] fake-1.0: ")]
    assert ends and "1 pass" in ends[0] and ends[0].endswith(" s")

"""The benchmark runner works (on tiny sizes: it measures nothing here; `python -m benchmarks` does, by hand)."""

import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_the_benchmark_runner_writes_every_row(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads((tmp_path / "tiny.json").read_text())
    whats = [r["what"] for r in data["rows"]]
    assert (
        len(whats) == 10
        and whats[0].startswith("collect")
        and whats[1].startswith("collect")
        and whats[-2] == "qdq run of one small case"
        and whats[-1].startswith("qdq run of 20 cases on numpy")
    )
    assert all(r["now"] and r["goal"] for r in data["rows"])
    assert "| what | floor | now | goal | met |" in (tmp_path / "tiny.md").read_text()

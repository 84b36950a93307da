"""Helpers shared by the tests: write case files under a temporary `cases/` folder and load them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

MINIMAL = """
title: t
source: {document: d}
network:
  - {op: input, name: x, dtype: float32, shape: [2]}
  - {op: constant, name: s, dtype: float32, shape: [], value: 1}
  - {op: quantize, name: y, input: x, scale: s, to: int8}
outputs: [y]
inputs: {x: [1, 2]}
expect: reference
"""  # the smallest valid case


@pytest.fixture
def cases_dir(tmp_path: Path) -> Path:
    root = tmp_path / "cases"
    root.mkdir()
    return root


@pytest.fixture
def write_case(cases_dir: Path):
    def write(relpath: str, text: str) -> Path:
        path = cases_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def load_case(write_case, cases_dir):
    from harness.cases.load import load_file

    def load(text: str, relpath: str = "t/case.yaml"):
        return load_file(write_case(relpath, text), cases_dir)

    return load


def run_qdq(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `qdq` command in a fresh process, as a user runs it."""
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def install_test_backends(tmp_path: Path, **entry_points: str) -> dict:
    """An environment (PYTHONPATH) in which tests/fault_backends is installed as a third-party package would be:
    a dist-info naming its backends in the entry-point group, `name=Class` each."""
    site = tmp_path / "site"
    dist = site / "test_backends-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: test-backends\nVersion: 0.1\n")
    lines = "".join(f"{name} = fault_backends:{cls}\n" for name, cls in entry_points.items())
    (dist / "entry_points.txt").write_text("[qdq_harness.backends]\n" + lines)
    return {"PYTHONPATH": f"{site}:{REPO / 'tests'}"}


def pytest_addoption(parser):
    parser.addoption(
        "--deep",
        action="store_true",
        default=False,
        help="generated cross-checks draw 20x more examples, with a random seed (tests/test_generated.py)",
    )


def stored_outputs(bundle_dir: Path, case_id: str, backend: str) -> dict:
    """The outputs a bundle stored for one (case, backend), found through its record as every reader finds them."""
    from harness.results import bundle

    doc = bundle.load(bundle_dir)
    (record,) = [r for r in doc["records"] if r["case_id"] == case_id and r["backend"] == backend]
    return bundle.record_outputs(bundle_dir, record)

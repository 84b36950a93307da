"""Malformed case files, each beside good cases, under a memory cap: every one is a `file:line: message` from
`qdq validate` and an INVALID-CASE-FILE item from `qdq run`, no traceback, no hang, and the good cases still pass.

Each file in tests/bad_inputs/ says on its first line (`# expect: ...`) what the message must contain, and marks
with `# <- here` the line it must name (line 1 when none is marked). The kinds that cannot be kept as small files
(a 50 MB file, a FIFO, a symlink loop, `x.yml` beside `x.yaml`) are made here.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BAD = Path(__file__).resolve().parent / "bad_inputs"
GOOD = ["docs/s1-per-tensor-int8.yaml", "docs/s2-per-channel-axis1.yaml", "numerics/rounding-ties.yaml"]
MEMORY_CAP = 3 << 30  # address space of each qdq process
TIMEOUT_S = 120


def _expectation(path: Path) -> tuple[str, int]:
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    fragment = lines[0].split("# expect: ", 1)[1]
    line = next((i + 1 for i, text in enumerate(lines) if text.endswith("# <- here")), 1)
    return fragment, line


STATIC = sorted(p.name for p in BAD.glob("*.yaml"))
MADE = {  # name -> (message fragment, line)
    "too-big.yaml": ("over the limit of", 1),
    "fifo.yaml": ("not a regular file", 1),
    "twin.yml": ("would have the same case id", 1),
}


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _qdq(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=_capped,
        env=env,
    )


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """A folder not named `cases`: every bad file, its data files, good cases, and the made kinds."""
    root = tmp_path_factory.mktemp("run") / "suite"
    shutil.copytree(BAD, root / "bad")
    for rel in GOOD:
        shutil.copy(REPO / "cases" / rel, root / Path(rel).name)
    with open(root / "bad" / "too-big.yaml", "wb") as f:  # sparse: 50 MB that take no disk
        f.truncate(50 << 20)
    os.mkfifo(root / "bad" / "fifo.yaml")
    shutil.copy(REPO / "cases" / GOOD[0], root / "bad" / "twin.yaml")
    shutil.copy(REPO / "cases" / GOOD[0], root / "bad" / "twin.yml")
    (root / "bad" / "loop").symlink_to("..")  # followed, it would run the whole tree again and again
    return root


@pytest.fixture(scope="module")
def validated(suite) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
    run = _qdq("validate", str(suite), cwd=suite.parent)
    by_file: dict[str, list[str]] = {}
    for line in run.stdout.splitlines():
        path = line.split(":", 1)[0]
        by_file.setdefault(Path(path).name, []).append(line)
    return run, by_file


@pytest.fixture(scope="module")
def ran(suite) -> tuple[subprocess.CompletedProcess, dict]:
    out = suite.parent / "out"
    run = _qdq("run", str(suite), "--backend", "numpy", "--out", str(out), "--no-report", cwd=suite.parent)
    return run, json.loads((out / "results.json").read_text())


def test_the_corpus_is_large_enough():
    assert len(STATIC) + len(MADE) >= 60


@pytest.mark.parametrize("name", STATIC + list(MADE))
def test_validate_names_the_file_and_line(validated, suite, name):
    run, by_file = validated
    fragment, line = MADE.get(name) or _expectation(BAD / name)
    expected_prefix = f"{suite / 'bad' / name}:{line}: "
    lines = by_file.get(name, [])
    assert any(ln.startswith(expected_prefix) and fragment in ln for ln in lines), (expected_prefix, fragment, lines)


@pytest.mark.parametrize("name", STATIC + list(MADE))
def test_run_makes_it_an_invalid_case_file_item(ran, suite, name):
    _, doc = ran
    fragment, line = MADE.get(name) or _expectation(BAD / name)
    records = [r for r in doc["records"] if r["case_id"] == f"bad/{name}"]
    assert records, f"no record for bad/{name}"
    assert all(r["status"] == "fail" and r["kind"] == "invalid-case-file" for r in records)
    assert any(
        r["reason"].startswith(f"{suite / 'bad' / name}:{line}: ") and fragment in r["reason"] for r in records
    ), [r["reason"] for r in records]


def test_no_traceback_and_the_right_exit_codes(validated, ran):
    for run in (validated[0], ran[0]):
        assert "Traceback" not in run.stdout + run.stderr
    assert validated[0].returncode == 2  # problems found
    assert ran[0].returncode == 1  # invalid files are failures


def test_good_cases_still_pass_once_each(ran):
    _, doc = ran
    good = [r for r in doc["records"] if not r["case_id"].startswith("bad/")]
    ids = [r["case_id"] for r in good]
    assert len(ids) == len(set(ids)), "a case ran twice: a symlinked folder was followed"
    assert {"s1-per-tensor-int8", "s2-per-channel-axis1"} <= set(ids)
    assert good and all(r["status"] in ("pass", "xfail") for r in good), [(r["case_id"], r["status"]) for r in good]

"""`qdq run -n N`: N pytest processes, each a share of the cases. Every case lands in exactly one share whatever the
files look like (one case each, a matrix of many, two files that give one id), and the merged bundle is the
single process's bundle."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, run_qdq
from harness.results.shards import exit_status

CASE = """title: t{i}
source: {{document: test}}
network:
  - {{op: input, name: x, dtype: float32, shape: [3]}}
  - {{op: constant, name: s, dtype: float32, shape: [], value: "{scale}"}}
  - {{op: quantize, name: q, input: x, scale: s, to: int8}}
  - {{op: dequantize, name: y, input: q, scale: s, to: float32}}
outputs: [y]
inputs: {{x: [{i}, -1, 2]}}
expect: reference
"""


@pytest.fixture
def mixed(tmp_path):
    """12 one-case files, one matrix file of 5 x 4 cases, and x.yaml beside x.yml (both give the id `x`)."""
    folder = tmp_path / "cases"
    (folder / "sub").mkdir(parents=True)
    for i in range(12):
        (folder / "sub" / f"c{i}.yaml").write_text(CASE.format(i=i, scale="0.5"))
    grid = CASE.format(i=3, scale="(${a}+1)/(${b}+4)") + "matrix: {a: [0, 1, 2, 3, 4], b: [0, 1, 2, 3]}\n"
    (folder / "grid.yaml").write_text(grid)
    (folder / "x.yaml").write_text(CASE.format(i=1, scale="0.5"))
    (folder / "x.yml").write_text(CASE.format(i=2, scale="0.5"))
    return folder


def _collected(folder, *extra: str) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["--qdq-backend", "numpy", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [line for line in r.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("count", [2, 3])
def test_every_item_is_in_exactly_one_share(mixed, count):
    whole = _collected(mixed)
    assert len(whole) == 12 + 20 + 2  # x.yml's case clashes with x.yaml's: one invalid-case-file item for it
    shares = [_collected(mixed, "--qdq-shard", f"{k}/{count}") for k in range(1, count + 1)]
    assert sorted(sum(shares, [])) == sorted(whole)
    grid = [sum(1 for item in share if "grid.yaml" in item) for share in shares]
    assert sum(grid) == 20 and sum(1 for n in grid if n) >= 2  # a matrix file's cases are shared out
    assert sum("invalid-case-file" in item for share in shares for item in share) == 1  # the clash, found once


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "a/b"])
def test_a_bad_share_is_a_usage_error(mixed, bad):
    r = subprocess.run(
        [sys.executable, "-m", "pytest", str(mixed), "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["--qdq-shard", bad],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 4 and "--qdq-shard" in r.stderr


def test_qdq_run_with_shares_writes_the_single_process_bundle(mixed, tmp_path):
    from harness.results.bundle import load
    from harness.results.outputs import record_outputs

    bundles = {}
    for n in ("1", "3"):
        out = tmp_path / f"n{n}"
        r = run_qdq("run", str(mixed), "--backend", "numpy", "--backend", "onnxruntime", "--out", str(out), "-n", n)
        assert r.returncode == 1, r.stderr[-2000:]  # the id clash is a failing item
        doc = load(out)
        bundles[n] = {
            (r["case_id"], r.get("backend"), r["status"], r.get("kind"), r.get("outputs_hash")): {
                k: v.tobytes() for k, v in record_outputs(out, r).items()
            }
            if r.get("outputs_file")
            else None
            for r in doc["records"]
        }
        assert doc["partial"] is False
    assert bundles["3"] == bundles["1"] and len(bundles["1"]) == 34 * 2 + 32  # each case: 2 backends + cross
    assert not (tmp_path / "n3" / "shards" / "1").exists() and (tmp_path / "n3" / "shards" / "1.log").exists()
    assert (tmp_path / "n3" / "summary.md").exists() and (tmp_path / "n3" / "allure-report" / "index.html").exists()


@pytest.mark.parametrize(
    "codes, expected",
    [([0, 0], 0), ([0, 5], 0), ([5, 5], 5), ([1, 0], 1), ([0, 2], 2), ([1, 3], 3), ([4, 1], 4), ([0, -9], 1)],
)
def test_the_run_exit_status_is_the_gravest_share(codes, expected):
    assert exit_status(codes) == expected

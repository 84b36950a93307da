"""Faster, never different: today's run of the whole suite on the CPU backends gives the same statuses, verdict
kinds, input and output hashes and cross-backend diffs as the run of the commit before the speed work
(tests/golden/suite-fingerprint.json, written by tests/golden_fingerprint.py from that commit's bundle).

A package version other than the one the fingerprint was made with may legitimately change the hashes of inputs
and outputs (a numpy or ml_dtypes release changes random streams, an ONNX Runtime release its kernels), but never
a verdict: statuses and verdict kinds are always compared; hashes and diffs only where every version matches, and
the test says which it compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version


from conftest import REPO
from golden_fingerprint import PACKAGES, fingerprint

GOLDEN = json.loads((REPO / "tests" / "golden" / "suite-fingerprint.json").read_text())


def test_the_whole_suite_gives_the_results_of_the_commit_before_the_speed_work(tmp_path):
    installed = {p: version(p) for p in PACKAGES}
    exact = installed == GOLDEN["versions"]
    out = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "cases",
            "--qdq-backend",
            "numpy",
            "--qdq-backend",
            "onnxruntime",
            "--qdq-backend",
            "onnx-reference",
            "--qdq-out",
            str(out),
            "-q",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    today = fingerprint(json.loads((out / "results.json").read_text()))
    # Cases added since are not in the fingerprint; every case that is must give exactly its results.
    known = {key.split(" ")[0] for key in GOLDEN["records"]}
    records = {k: v for k, v in today["records"].items() if k.split(" ")[0] in known}
    assert records.keys() == GOLDEN["records"].keys()
    compared = slice(None) if exact else slice(0, 2)  # [status, kind, inputs hash, outputs hash]
    changed = {
        k: (GOLDEN["records"][k], v) for k, v in records.items() if GOLDEN["records"][k][compared] != v[compared]
    }
    assert not changed, changed
    if exact:
        assert {k: v for k, v in today["diffs"].items() if k.split(" ")[0] in known} == GOLDEN["diffs"]
    print(
        f"compared {len(records)} records: "
        + (
            "statuses, kinds, hashes and diffs (the versions match)"
            if exact
            else f"statuses and kinds only: installed {installed}, the fingerprint was made with {GOLDEN['versions']}"
        )
    )

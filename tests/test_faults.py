"""Faults never cost a finished result and never stop the run: kills, crashes and hangs of backends running in the
pytest process, native writes to stdout in isolation workers, two runs into one folder, Ctrl-C.

The test backends live in a package of their own (tests/fault_backends/), registered through an entry point the
way a third-party backend is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, install_test_backends, run_qdq

CASES = ["cases/docs", "cases/rules/zero-point.yaml"]


@pytest.fixture
def site(tmp_path) -> dict:
    """An environment in which the fault backends are installed, and the file their loads mark."""
    env = install_test_backends(
        tmp_path,
        **{
            "inprocess-segfault": "InProcessSegfault",
            "inprocess-hang": "InProcessHang",
            "noisy": "NoisyNative",
            "slow": "Slow",
        },
    )
    return {**env, "QDQ_TEST_MARKERS": str(tmp_path / "markers")}


def _records(out: Path) -> dict[tuple[str, str], dict]:
    from harness.results.bundle import load

    return {(r["case_id"], r["backend"]): r for r in load(out)["records"]}


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        args, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_markers(path: Path, count: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} items started within {timeout} s")


@pytest.mark.parametrize("processes", ["1", "2"])
def test_an_in_process_segfault_without_xdist_does_not_stop_the_run(tmp_path, site, processes):
    """Each crash is resumed past, in a single pytest process and in every share of `qdq run -n 2`."""
    out = tmp_path / "out"
    r = run_qdq(
        "run",
        *CASES,
        "--backend",
        "numpy",
        "--backend",
        "inprocess-segfault",
        "--out",
        str(out),
        "--no-report",
        "-n",
        processes,
        env=site,
    )
    assert r.returncode == 1, r.stderr
    records = _records(out)
    crashed = {k: v for k, v in records.items() if k[1] == "inprocess-segfault"}
    cases = {k[0] for k in records if k[1] == "numpy"}
    assert len(cases) == 9 and set(c for c, _ in crashed) == cases  # every case got its crash record
    assert all(v["status"] == "error" and "SIGSEGV" in v["reason"] for v in crashed.values())
    assert all(records[(c, "numpy")]["status"] in ("pass", "xfail") for c in cases)


def test_an_in_process_hang_gets_the_timeout_of_an_isolated_backend(tmp_path, site):
    out = tmp_path / "out"
    r = run_qdq(
        "run",
        "cases/docs/s1-per-tensor-int8.yaml",
        "--backend",
        "numpy",
        "--backend",
        "inprocess-hang",
        "--out",
        str(out),
        "--no-report",
        env={**site, "QDQ_BACKEND_TIMEOUT": "2"},
    )
    assert r.returncode == 1
    records = _records(out)
    hang = records[("docs/s1-per-tensor-int8", "inprocess-hang")]
    assert hang["status"] == "error" and "no answer within 2 s" in hang["reason"]
    assert records[("docs/s1-per-tensor-int8", "numpy")]["status"] == "pass"


def test_native_writes_to_stdout_in_a_worker_do_not_shift_verdicts(tmp_path, site):
    """`noisy` is the numpy reference run in an isolation worker that prints protocol-shaped lines from C before and
    after every build: each case must get exactly numpy's verdict."""
    out = tmp_path / "out"
    run_qdq("run", *CASES, "--backend", "numpy", "--backend", "noisy", "--out", str(out), "--no-report", env=site)
    records = _records(out)
    cases = sorted({c for c, b in records if b == "numpy"})
    assert len(cases) == 9
    for case in cases:
        numpy, noisy = records[(case, "numpy")], records[(case, "noisy")]
        assert (noisy["status"], noisy["kind"]) == (numpy["status"], numpy["kind"]), case
    assert records[("rules/zero-point::shape-mismatch", "noisy")]["kind"] != "missing-expected-error"


def test_sigkill_loses_no_finished_item(tmp_path, site):
    out = tmp_path / "out"
    markers = Path(site["QDQ_TEST_MARKERS"])
    proc = _start(
        [
            sys.executable,
            "-m",
            "pytest",
            *CASES,
            "--qdq-backend",
            "numpy",
            "--qdq-backend",
            "slow",
            "--qdq-out",
            str(out),
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        site,
    )
    started = _wait_for_markers(markers, 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    started = markers.read_text().splitlines()
    records = _records(out)
    # Backends run in order numpy, slow: every case whose `slow` item started had its numpy item finished, and
    # every `slow` item but the last one started had finished too.
    for case in started:
        assert (case, "numpy") in records, case
    for case in started[:-1]:
        assert (case, "slow") in records, case


def test_two_runs_into_one_folder_the_second_is_refused(tmp_path, site):
    out = tmp_path / "out"
    markers = Path(site["QDQ_TEST_MARKERS"])
    gate = tmp_path / "go"  # the first run waits in its first item until the second has been refused
    first = _start(
        [
            sys.executable,
            "-m",
            "harness.cli.main",
            "run",
            "cases/docs",
            "--backend",
            "slow",
            "--out",
            str(out),
            "--no-report",
        ],
        {**site, "QDQ_TEST_GATE": str(gate)},
    )
    _wait_for_markers(markers, 1)
    second = run_qdq("run", "cases/docs", "--backend", "numpy", "--out", str(out), "--no-report", env=site)
    gate.touch()
    assert second.returncode == 2 and "in use by another run" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert "INTERNALERROR" not in stdout + stderr
    assert len([k for k in _records(out) if k[1] == "slow"]) == 6


def test_an_out_folder_that_is_a_file_is_one_line_and_exit_2(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    r = run_qdq("run", "cases/docs", "--backend", "numpy", "--out", str(target))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "is a file" in r.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ctrl_c_exits_130_and_keeps_a_partial_bundle(tmp_path, site, processes):
    out = tmp_path / "out"
    markers = Path(site["QDQ_TEST_MARKERS"])
    proc = _start(
        [
            sys.executable,
            "-m",
            "harness.cli.main",
            "run",
            *CASES,
            "--backend",
            "numpy",
            "--backend",
            "slow",
            "--out",
            str(out),
            "--no-report",
            "-n",
            processes,
        ],
        site,
    )
    _wait_for_markers(markers, 3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    doc = json.loads((out / "results.json").read_text())
    assert doc["partial"] is True and doc["finished"] is not None
    assert any(r["backend"] == "slow" for r in doc["records"])
    # --resume finishes it as it was started: every item once, and every stored output readable where it is named
    r = run_qdq(
        "run", *CASES, "--backend", "numpy", "--backend", "slow", "--out", str(out), "--no-report", "--resume", env=site
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from harness.results.bundle import load
    from harness.results.outputs import record_outputs

    doc = load(out)
    assert doc["partial"] is False and len(doc["records"]) == 9 * 2 + 9  # 9 cases x (2 backends + cross-backend)
    stored = [r for r in doc["records"] if r.get("outputs_file")]
    assert len(stored) >= 9 and all(record_outputs(out, r) for r in stored)
    assert not (out / "shards" / "1").exists()  # merged: the shares' outputs moved up

"""What a run may write: a budget of stored output bytes (a case over it is that case's error, the rest runs), and a
full disk that ends the run cleanly, partial, saying "disk full writing DIR", never an INTERNALERROR."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest

from conftest import MINIMAL, run_qdq

MIB = 1 << 20


def _case(elements: int, fill: int) -> str:
    return MINIMAL.replace("shape: [2]", f"shape: [{elements}]").replace(
        "inputs: {x: [1, 2]}", f"inputs: {{x: {{fill: {fill}}}}}"
    )


def _records(out: Path) -> dict[str, dict]:
    return {r["case_id"]: r for r in json.loads((out / "results.json").read_text())["records"]}


def test_a_case_over_the_output_budget_is_its_own_error_and_the_rest_runs(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a-fits.yaml").write_text(_case(2 * MIB, 1))  # int8 outputs: 2 MiB
    (cases / "b-over.yaml").write_text(_case(3 * MIB, 2))  # 3 MiB more would pass the 4 MiB budget
    (cases / "c-small.yaml").write_text(MINIMAL)
    out = tmp_path / "out"
    done = run_qdq(
        "run", str(cases), "--backend", "numpy", "--out", str(out), "--no-report", "--output-budget", "4M", cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    records = _records(out)
    assert records["a-fits"]["status"] == "pass" and "outputs_file" in records["a-fits"]
    assert records["b-over"]["status"] == "error" and records["b-over"]["kind"] == "output-not-stored"
    assert "output budget of 4,194,304 bytes" in records["b-over"]["reason"]
    assert "outputs_file" not in records["b-over"]
    assert records["c-small"]["status"] == "pass" and "outputs_file" in records["c-small"]
    stored = sum(p.stat().st_size for p in (out / "outputs").rglob("*") if p.is_file())
    assert 2 * MIB <= stored <= 4 * MIB
    assert json.loads((out / "results.json").read_text())["partial"] is False


def test_a_budget_that_is_not_a_size_is_a_usage_error(tmp_path):
    done = run_qdq("run", "cases/docs", "--backend", "numpy", "--out", str(tmp_path / "o"), "--output-budget", "lots")
    assert done.returncode == 2 and "--qdq-output-budget 'lots'" in done.stdout + done.stderr


def test_the_journal_failing_for_lack_of_room_marks_the_bundle_instead_of_crashing(tmp_path, monkeypatch):
    from harness.results.bundle import BundleWriter

    writer = BundleWriter(tmp_path, {"numpy": {}})

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    writer.journal = Full()
    writer.add({"nodeid": "n", "case_id": "c", "backend": "numpy", "status": "pass", "kind": "pass", "reason": ""})
    assert writer.disk_full == f"disk full writing {tmp_path}"
    writer.finish(0, complete=True)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["partial"] is True and doc["stopped"].startswith("disk full writing")


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs: a real full disk (needs the right to mount, which CI's root has; else skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_ends_the_run_partial_with_one_line_and_keeps_what_was_written(tmp_path, small_disk):
    cases = tmp_path / "cases"
    cases.mkdir()
    for i in range(12):  # 4 MB of outputs each: the reserve is reached after a few
        (cases / f"big{i:02d}.yaml").write_text(_case(4_000_000, i))
    out = small_disk / "out"
    done = run_qdq("run", str(cases), "--backend", "numpy", "--out", str(out), "--output-budget", "1T", cwd=tmp_path)
    assert done.returncode == 1
    assert "INTERNALERROR" not in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"qdq run: disk full writing {out}")
    doc = json.loads((out / "results.json").read_text())
    assert doc["partial"] is True
    kept = [r for r in doc["records"] if r["status"] == "pass"]
    assert kept and all(Path(out / r["outputs_file"]).is_file() for r in kept)


def test_one_output_larger_than_the_free_disk_is_that_case_s_error(tmp_path, small_disk):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "huge.yaml").write_text(_case(60_000_000, 1))
    for i in range(3):
        (cases / f"small{i}.yaml").write_text(MINIMAL)
    out = small_disk / "out"
    done = run_qdq("run", str(cases), "--backend", "numpy", "--out", str(out), "--output-budget", "1T", cwd=tmp_path)
    assert "INTERNALERROR" not in done.stdout + done.stderr
    records = _records(out)
    assert records["huge"]["kind"] == "output-not-stored" and "disk full" in records["huge"]["reason"]
    assert all(records[f"small{i}"]["status"] == "pass" for i in range(3))

"""What a case file can make a run write: only inside the run's own bundle, one outputs file per case.

Each test here failed on the commit before the trust-boundary work (issue 19, items 1 and 2): a matrix key with
path syntax wrote beside `cases/`, and `x.yaml::b` and `x/b.yaml` shared one outputs file.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np

from conftest import run_qdq

BIG = 300_000  # float32 elements: 1.2 MB, over the 1 MiB that goes to a pack, so the output is a file of its own


def _case(fill: float, extra: str = "") -> str:
    return (
        textwrap.dedent(f"""
        title: t
        source: {{document: d}}
        network:
          - {{op: input, name: x, dtype: float32, shape: [{BIG}]}}
          - {{op: constant, name: s, dtype: float32, shape: [], value: 1}}
          - {{op: quantize, name: q, input: x, scale: s, to: int8}}
          - {{op: dequantize, name: y, input: q, scale: s}}
        outputs: [y]
        inputs: {{x: {{fill: {fill}}}}}
        expect: reference
        """)
        + extra
    )


def _files_under(folder: Path) -> set[Path]:
    return {Path(d) / f for d, _, files in os.walk(folder) for f in files}


def _run(tmp_path: Path) -> dict:
    out = tmp_path / "out"
    done = run_qdq("run", str(tmp_path / "cases"), "--backend", "numpy", "--out", str(out), "--no-report", cwd=tmp_path)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def test_a_matrix_key_with_path_syntax_writes_inside_the_bundle(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "x.yaml").write_text(_case(1, "matrix:\n  '/../../../../canary/k': [1]\n"))
    before = _files_under(tmp_path)
    doc = _run(tmp_path)
    written = _files_under(tmp_path) - before
    outside = [p for p in written if not p.is_relative_to(tmp_path / "out")]
    assert not outside, outside
    [record] = [r for r in doc["records"] if r["backend"] == "numpy"]
    assert record["status"] == "pass", record
    stored = tmp_path / "out" / record["outputs_file"]
    assert stored.resolve().is_relative_to((tmp_path / "out" / "outputs").resolve())
    from harness.results.bundle import record_outputs

    assert np.all(record_outputs(tmp_path / "out", record)["y"] == 1.0)


def test_a_case_in_x_yaml_and_the_file_x_slash_b_keep_their_own_outputs(tmp_path):
    cases = tmp_path / "cases"
    (cases / "x").mkdir(parents=True)
    one = _case(3).replace("title: t\n", "")
    entry = textwrap.indent(one, "    ").lstrip()
    (cases / "x.yaml").write_text(f"cases:\n  - name: b\n    title: t\n    {entry}")
    (cases / "x" / "b.yaml").write_text(_case(5))
    doc = _run(tmp_path)
    from harness.results.bundle import record_outputs

    mine = {r["case_id"]: r for r in doc["records"] if r["backend"] == "numpy"}
    assert set(mine) == {"x::b", "x/b"}
    assert mine["x::b"]["outputs_file"] != mine["x/b"]["outputs_file"]
    assert np.all(record_outputs(tmp_path / "out", mine["x::b"])["y"] == 3.0)
    assert np.all(record_outputs(tmp_path / "out", mine["x/b"])["y"] == 5.0)


def test_two_files_with_one_case_id_are_a_load_error_naming_both(tmp_path):
    # Neither folder is named `cases`: each file's id is its own name, `t`, in both.
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.yaml").write_text(_case(1).replace(str(BIG), "2"))
    out = tmp_path / "out"
    done = run_qdq(
        "run",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "--backend",
        "numpy",
        "--out",
        str(out),
        "--no-report",
        cwd=tmp_path,
    )
    doc = json.loads((out / "results.json").read_text())
    invalid = [r for r in doc["records"] if r["kind"] == "invalid-case-file"]
    assert len(invalid) == 1 and str(tmp_path / "a" / "t.yaml") in invalid[0]["reason"], invalid
    assert str(tmp_path / "b" / "t.yaml") in invalid[0]["reason"]
    assert [r["status"] for r in doc["records"] if r["case_id"] == "t"] == ["pass"]
    assert done.returncode == 1


# --- item 4: never remove or overwrite what the harness did not write ----------------------------------------------

USER_FILES = {
    "notes.txt": "mine",
    "outputs/keep.npz": "mine",
    "allure-report/index.html": "mine",
    "previous/results.json": "mine",
    "results.json": '{"mine": true}',
}


def _user_folder(folder: Path) -> None:
    for rel, text in USER_FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


def _small_case(tmp_path: Path) -> Path:
    cases = tmp_path / "cases"
    cases.mkdir(exist_ok=True)
    (cases / "t.yaml").write_text(_case(1).replace(str(BIG), "2"))
    return cases


def test_run_into_a_folder_the_harness_did_not_write_is_refused_and_leaves_it_alone(tmp_path):
    cases, out = _small_case(tmp_path), tmp_path / "mine"
    _user_folder(out)
    done = run_qdq("run", str(cases), "--backend", "numpy", "--out", str(out), "--no-report", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "did not write" in done.stderr and "--force" in done.stderr
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(USER_FILES)
    assert all((out / rel).read_text() == text for rel, text in USER_FILES.items())
    # pytest's own entry to the same run is refused alike
    direct = run_qdq_pytest(cases, out)
    assert direct.returncode == 4 and "did not write" in direct.stdout + direct.stderr
    assert all((out / rel).read_text() == text for rel, text in USER_FILES.items())


def run_qdq_pytest(cases: Path, out: Path):
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(cases),
            "--qdq-backend",
            "numpy",
            "--qdq-out",
            str(out),
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=cases.parent,
        capture_output=True,
        text=True,
    )


def test_run_into_its_own_bundle_or_with_force_goes_ahead(tmp_path):
    cases, out = _small_case(tmp_path), tmp_path / "out"
    for _ in range(2):  # the second run finds the marker the first wrote
        done = run_qdq("run", str(cases), "--backend", "numpy", "--out", str(out), "--no-report", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert (out / "previous" / "results.json").is_file()
    forced = tmp_path / "forced"
    _user_folder(forced)
    done = run_qdq(
        "run", str(cases), "--backend", "numpy", "--out", str(forced), "--no-report", "--force", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert (forced / "notes.txt").read_text() == "mine"  # what a run does not produce is never touched


def test_import_into_a_folder_holding_a_qdq_yaml_it_did_not_write_is_refused(tmp_path):
    import pytest

    pytest.importorskip("onnx")
    import qat_model

    model, out = tmp_path / "qat.onnx", tmp_path / "cases" / "mine"
    qat_model.save(model)
    out.mkdir(parents=True)
    (out / "qdq.yaml").write_text("# my own cases\n")
    done = run_qdq("import", str(model), "-o", str(out))
    assert done.returncode == 2 and "did not write" in done.stderr, done.stderr
    assert (out / "qdq.yaml").read_text() == "# my own cases\n"
    again = tmp_path / "cases" / "fresh"
    assert run_qdq("import", str(model), "-o", str(again)).returncode == 0
    assert run_qdq("import", str(model), "-o", str(again)).returncode == 0  # its own folder: written again
    assert run_qdq("import", str(model), "-o", str(out), "--force").returncode == 0
    assert (out / "qdq.yaml").read_text() != "# my own cases\n"


# --- item 9: matrix versions are checked before anything is made -------------------------------------------------

import pytest  # noqa: E402


@pytest.mark.parametrize("version", ["../../x", "latest", "1.2; rm -rf /", " 1.0", "1.0/..", ">=1.20"])
def test_a_matrix_version_that_is_not_pep_440_is_refused_before_anything_is_made(tmp_path, version):
    cache = tmp_path / "cache"
    done = run_qdq(
        "matrix",
        "cases/docs",
        "--onnxruntime",
        "1.32.0",
        "--onnxruntime",
        version,
        "--cache",
        str(cache),
        "--out",
        str(tmp_path / "m"),
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert repr(version) in done.stderr and "nothing was made" in done.stderr
    assert not cache.exists() and not (tmp_path / "m").exists()


def test_pack_replaces_its_own_archive_but_not_a_file_it_did_not_write(tmp_path):
    cases = _small_case(tmp_path)
    out = tmp_path / "out"
    assert run_qdq("run", str(cases), "--backend", "numpy", "--out", str(out), "--no-report").returncode == 0
    mine = tmp_path / "notes.tar.gz"
    mine.write_text("my notes")
    done = run_qdq("pack", str(out), "-o", str(mine))
    assert done.returncode == 2 and "not a qdq pack" in done.stderr and mine.read_text() == "my notes"
    ours = tmp_path / "ours.tar.gz"
    assert run_qdq("pack", str(out), "-o", str(ours)).returncode == 0
    assert run_qdq("pack", str(out), "-o", str(ours)).returncode == 0  # its own archive: replaced
    assert run_qdq("pack", str(out), "-o", str(mine), "--force").returncode == 0


def test_single_file_outputs_never_replace_a_file_qdq_did_not_write(tmp_path):
    """`qdq compare --md/--html/--json`, `qdq repro -o` and `qdq export -o` replace their own earlier output, refuse
    any other existing file (it stays as it was), and replace it only with --force."""
    out = tmp_path / "run"
    assert run_qdq("run", "cases/docs", "--backend", "numpy", "--out", str(out), "--no-report").returncode == 0
    case = "docs/s1-per-tensor-int8"
    commands = {
        "compare-md": (["compare", str(out), str(out), "--md"], "notes.md"),
        "compare-html": (["compare", str(out), str(out), "--html"], "page.html"),
        "compare-json": (["compare", str(out), str(out), "--json"], "data.json"),
        "repro": (["repro", case, "--backend", "numpy", "-o"], "script.py"),
        "export": (["export", case, "-o"], "model.onnx"),
    }
    for name, (args, filename) in commands.items():
        target = tmp_path / name / filename
        target.parent.mkdir()
        target.write_text("a user's own file\n")
        refused = run_qdq(*args, str(target))
        assert refused.returncode == 2, (name, refused.stdout, refused.stderr)
        assert "not written by qdq-harness" in refused.stderr and "Traceback" not in refused.stderr, name
        assert target.read_bytes() == b"a user's own file\n", name
        forced = run_qdq(*args, str(target), "--force")
        assert forced.returncode == 0 and target.read_bytes() != b"a user's own file\n", (name, forced.stderr)
        again = run_qdq(*args, str(target))  # its own output: replaced without --force
        assert again.returncode == 0, (name, again.stderr)

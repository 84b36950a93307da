"""Repro scripts run standalone (no harness import) and print/save what the harness stored."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import run_qdq, stored_outputs

CASES = [
    "docs/s1-per-tensor-int8",
    "docs/s5-block-int4",
    "docs/s4-operator-example",
    "numerics/saturation::int4::dtype=float32",
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("b")
    files = sorted({c.split("::")[0] for c in CASES})
    r = run_qdq(
        "run",
        *[f"cases/{f}.yaml" for f in files],
        "--backend",
        "numpy",
        "--backend",
        "onnxruntime",
        "--backend",
        "onnx-reference",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stdout[-2000:]
    return out


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime", "onnx-reference"])
@pytest.mark.parametrize("case_id", CASES)
def test_repro_script_reproduces_stored_outputs(bundle, tmp_path, backend, case_id):
    script = tmp_path / "repro.py"
    r = run_qdq("repro", case_id, "--backend", backend, "-o", str(script))
    assert r.returncode == 0, r.stderr
    text = script.read_text()
    assert "harness" not in text.replace("qdq-harness", "")  # standalone: no harness import
    saved = tmp_path / "saved"
    run = subprocess.run(
        [sys.executable, str(script), "--save", str(saved)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert run.returncode == 0, run.stderr
    stored = stored_outputs(bundle, case_id, backend)
    for name, value in stored.items():
        assert np.array_equal(
            np.load(saved / f"{name}.npy", allow_pickle=False), value.astype(np.float64), equal_nan=True
        )


def test_unknown_backend_is_a_usage_error():
    r = run_qdq("repro", "docs/s1-per-tensor-int8", "--backend", "nope")
    assert r.returncode == 2 and "unknown backend 'nope'" in r.stderr


@pytest.mark.parametrize("backend", ["onnxruntime", "onnx-reference", "tensorrt-onnx"])
def test_a_repro_script_is_written_at_the_opset_the_run_uses(tmp_path, backend):
    """One rule chooses the opset for runs and scripts: `--opset 21` gives a script at 21, not the case's lowest."""
    for opset, expected in ((21, 21), (None, None)):
        script = tmp_path / f"repro-{opset}.py"
        args = ["repro", "docs/s1-per-tensor-int8", "--backend", backend, "-o", str(script)]
        r = run_qdq(*args, *(["--opset", str(opset)] if opset else []))
        assert r.returncode == 0, r.stderr
        found = [int(x) for x in __import__("re").findall(r"make_opsetid\('', (\d+)\)", script.read_text())]
        assert len(found) == 1
        if expected:
            assert found == [expected]
        else:
            assert found[0] < 21  # the case's own lowest opset


def test_a_repro_script_prints_expected_beside_got(tmp_path):
    """ONNX Runtime divides x / s: at x = 30 it gives 64 where the cookbook (and the contract) print 63."""
    script = tmp_path / "repro.py"
    assert run_qdq("repro", "docs/s1-per-tensor-int8", "--backend", "onnxruntime", "-o", str(script)).returncode == 0
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "the case expects: values (exact)" in done.stdout
    assert "got:" in done.stdout and "expected (the case's values):" in done.stdout
    assert "1 of 60 elements differ, the first at [0, 1, 2, 0]" in done.stdout

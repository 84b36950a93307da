"""Where a case's time goes, per phase, in every record: load (for TensorRT the build, or the engine-cache read,
which `details.engine_cache` names), activate, infer (and `details.gpu_ms` for the engine alone on a GPU)."""

from __future__ import annotations

import ast
import json

import pytest

from harness.engine.execute import execute
from plugins.numpy.backend import NumpyReference

from conftest import MINIMAL, REPO, run_qdq


def test_every_phase_is_timed_and_the_phases_fit_in_the_whole(load_case):
    (case,) = load_case(MINIMAL)
    outcome = execute(NumpyReference(), case)
    assert list(outcome.timings) == ["load", "activate", "infer"]
    assert all(v >= 0 for v in outcome.timings.values())
    assert sum(outcome.timings.values()) <= outcome.seconds + 1e-5


def test_a_phase_that_fails_is_timed_and_none_after_it(load_case):
    (case,) = load_case(MINIMAL)

    class RefusesToLoad(NumpyReference):
        def load(self, case):
            raise RuntimeError("no")

    outcome = execute(RefusesToLoad(), case)
    assert outcome.crash and list(outcome.timings) == ["load"]


def test_records_carry_the_timings_also_from_isolation_workers(tmp_path):
    out = tmp_path / "out"
    r = run_qdq(
        "run",
        "cases/docs/s1-per-tensor-int8.yaml",
        "--backend",
        "numpy",
        "--backend",
        "onnxruntime",
        "--out",
        str(out),
        "--no-report",
    )
    assert r.returncode == 0, r.stdout[-2000:]
    records = {rec["backend"]: rec for rec in json.loads((out / "results.json").read_text())["records"]}
    for backend in ("numpy", "onnxruntime"):  # in the pytest process, and across the worker's pipe
        assert set(records[backend]["timings"]) == {"load", "activate", "infer"}, backend
        assert sum(records[backend]["timings"].values()) <= records[backend]["seconds"] + 1e-5


def test_a_cpu_build_of_tensorrt_rtx_is_timed_and_says_it_was_not_cached():
    pytest.importorskip("tensorrt_rtx")
    from harness.cases.load import load_file
    from plugins.tensorrt.rtx_backend import TensorRTRTXBackend

    (case,) = load_file(REPO / "cases" / "docs" / "s1-per-tensor-int8.yaml", REPO / "cases")
    outcome = execute(TensorRTRTXBackend(), case)
    assert outcome.built_not_run  # built for real on the CPU: the build is the load phase
    assert outcome.timings["load"] > 0 and "activate" in outcome.timings and "infer" not in outcome.timings
    assert outcome.details["engine_cache"] == "off"  # CPU builds are not cached (cheaper than the bookkeeping)


def test_every_cuda_runtime_call_of_the_gpu_runner_exists_in_the_installed_cuda_python():
    """The GPU runner cannot run here; what it calls of cuda-python's runtime module must at least exist there
    (the API-surface check fakes that module)."""
    pytest.importorskip("cuda.bindings.runtime")
    from plugins.tensorrt.runtime import cuda_runtime

    source = (REPO / "plugins" / "tensorrt" / "runtime.py").read_text()
    called = {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cudart"
    }
    assert {"cudaEventCreate", "cudaEventRecord", "cudaEventElapsedTime", "cudaMemcpyAsync"} <= called
    runtime = cuda_runtime()
    assert not {name for name in called if not hasattr(runtime, name)}

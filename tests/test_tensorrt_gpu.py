"""TensorRT on a GPU: these need the full TensorRT libraries and an NVIDIA GPU, and skip with the reason elsewhere."""

import json

import pytest

from conftest import run_qdq
from harness.engine.backend import availability

pytestmark = pytest.mark.gpu


def _require(name):
    a = availability(name)
    if not a.available:
        pytest.skip(f"{name} unavailable: {a.reason}")


@pytest.mark.parametrize("backend", ["tensorrt", "tensorrt-strongly-typed", "tensorrt-onnx"])
def test_documented_scenarios_run_on_the_gpu(backend, tmp_path):
    _require(backend)
    out = tmp_path / "o"
    run_qdq("run", "cases/docs", "--backend", "numpy", "--backend", backend, "--out", str(out))
    records = [r for r in json.loads((out / "results.json").read_text())["records"] if r["backend"] == backend]
    assert records and all(r["status"] in ("pass", "xfail", "fail") for r in records)  # ran: a verdict, not a skip
    s2 = next(r for r in records if r["case_id"] == "docs/s2-per-channel-axis1")
    assert s2["status"] == "pass", s2["reason"]

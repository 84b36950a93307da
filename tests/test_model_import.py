"""`qdq import model.onnx`: each distinct Q/DQ configuration of a QAT-style model becomes a case that validates and
runs, with the model's own scales and weights."""

import json

import numpy as np
import pytest

from conftest import run_qdq

pytest.importorskip("onnx")


def test_import_writes_one_case_per_distinct_configuration_and_they_run(tmp_path):
    import qat_model
    import yaml

    model = tmp_path / "qat.onnx"
    qat_model.save(model)
    cases = tmp_path / "cases"
    r = run_qdq("import", str(model), "-o", str(cases / "imported" / "qat"))
    assert r.returncode == 0, r.stderr
    body = yaml.safe_load((cases / "imported" / "qat" / "qdq.yaml").read_text())
    names = [c["name"] for c in body["cases"]]
    # x_q and c_q share one activation configuration (same scale and zero point): three, not four; then each
    # conv with Q/DQ inputs, with the model's weights (written as .npy beside the file: over 256 values).
    assert names == [
        "000-activation-int8-per-tensor",
        "001-weight-int8-per-channel",
        "002-quantized-weight-int8-per-channel",
        "003-conv",
        "004-conv",
    ]
    conv = body["cases"][3]
    assert conv["outputs"] == ["y"]  # the Quantize after the conv (c_q) is part of the case
    layer = next(layer for layer in conv["network"] if layer["op"] == "conv")
    assert layer["padding"] == [1, 1, 1, 1]
    w = next(layer for layer in conv["network"] if layer["name"] == "w")
    assert np.array_equal(np.load(cases / "imported" / "qat" / w["value"]["npy"], allow_pickle=False), qat_model.W)
    weight = body["cases"][1]
    w = next(layer for layer in weight["network"] if layer["name"] == "x")
    assert np.array_equal(np.load(cases / "imported" / "qat" / w["value"]["npy"], allow_pickle=False), qat_model.W)
    assert weight["source"] == {"document": "qat.onnx", "where": "node 'w_q' (QuantizeLinear)"}
    assert run_qdq("validate", str(cases)).returncode == 0
    out = tmp_path / "out"
    ran = run_qdq("run", str(cases), "--backend", "numpy", "--backend", "onnxruntime", "--out", str(out), "--no-report")
    records = json.loads((out / "results.json").read_text())["records"]
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert {(r["backend"], r["status"]) for r in records} == {
        ("numpy", "pass"),
        ("onnxruntime", "pass"),
        ("cross-backend", "pass"),
    }


def test_import_of_a_file_that_is_not_a_model_says_so(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_text("not a model")
    r = run_qdq("import", str(bad), "-o", str(tmp_path / "cases" / "x"))
    assert r.returncode == 2 and "not a readable ONNX model" in r.stderr and "Traceback" not in r.stderr

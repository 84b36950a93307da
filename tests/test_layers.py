"""Compute layers next to Q/DQ: shapes, the float simulation, the fused INT8 model, and the labelled difference."""

import json
from pathlib import Path

import numpy as np

from conftest import REPO, run_qdq


def _case(body: dict, tmp_path: Path):
    from harness.caseload import check_file

    import yaml

    path = tmp_path / "cases" / "c.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))
    return check_file(path, path.parent)


def _conv_case(**conv):
    return {
        "title": "t",
        "source": {"document": "d"},
        "outputs": ["y"],
        "network": [
            {"op": "input", "name": "x", "dtype": "float32", "shape": [1, 2, 5, 5]},
            {"op": "constant", "name": "w", "dtype": "float32", "shape": [4, 1, 3, 3], "value": {"fill": 1}},
            {"op": "conv", "name": "y", "input": "x", "weight": "w", **conv},
        ],
        "inputs": {"x": {"fill": 1}},
        "expect": "reference",
    }


def test_conv_shape_follows_stride_padding_and_groups(tmp_path):
    from harness.network import NetworkInfo

    cases, problems = _case(_conv_case(groups=2, stride=[2, 2], padding=[1, 1]), tmp_path)
    assert not problems
    assert NetworkInfo(cases[0]).shapes["y"] == (1, 4, 3, 3)  # (5 + 2 - 3) // 2 + 1 = 3


def test_a_conv_whose_groups_do_not_fit_is_a_case_file_error_with_its_line(tmp_path):
    _, problems = _case(_conv_case(groups=3), tmp_path)
    assert problems and "input channels 2" in str(problems[0]) and problems[0].line > 1


def test_float_simulation_of_a_strided_padded_conv_matches_a_direct_sum():
    from harness.case import Layer
    from plugins.numpy import ops

    layer = Layer(op="conv", name="y", line=1, input="x", weight="w", attrs=(("padding", (1, 1)), ("stride", (2, 2))))
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    w = np.array([[[[1, 0, 0], [0, 1, 0], [0, 0, 2]]]], dtype=np.float32)
    y = ops.conv(layer, x, w, None)
    padded = np.pad(x[0, 0], 1)
    for i in range(3):
        for j in range(3):
            window = padded[2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            assert y[0, 0, i, j] == window[0, 0] + window[1, 1] + 2 * window[2, 2]


def test_average_pool_does_not_count_padding():
    from harness.case import Layer
    from plugins.numpy import ops

    layer = Layer(
        op="pool",
        name="p",
        line=1,
        input="x",
        attrs=(("kernel", (2, 2)), ("kind", "average"), ("padding", (1, 1)), ("stride", (2, 2))),
    )
    x = np.full((1, 1, 2, 2), 4.0, np.float32)
    # Corner windows hold one real element each: 4, not 1 (which counting the zeros would give).
    assert ops.pool(layer, x).ravel().tolist() == [4.0, 4.0, 4.0, 4.0]


def test_fused_model_rounds_the_combined_scale_product(tmp_path):
    from harness.caseload import load_file
    from harness.execute import execute
    from plugins.numpy.fused import NumpyFused

    case = load_file(REPO / "cases" / "layers" / "fused-vs-simulated.yaml", REPO / "cases")[0]
    outcome = execute(NumpyFused(), case)
    # acc = 105, 315, 735, 7 times float32(float32(0.1 * 0.1) * float32(1/0.3)): stated independently here.
    m = np.float32(np.float32(np.float32(0.1) * np.float32(0.1)) * (np.float32(1) / np.float32(0.3)))
    want = np.rint(np.array([105, 315, 735, 7], np.float32) * m)
    assert outcome.outputs["y"].ravel().tolist() == want.tolist() == [4, 11, 25, 0]


def test_fused_vs_simulated_is_labelled_with_its_size_and_does_not_fail(tmp_path):
    out = tmp_path / "out"
    r = run_qdq(
        "run",
        "cases/layers/fused-vs-simulated.yaml",
        "--backend",
        "numpy",
        "--backend",
        "numpy-fused",
        "--backend",
        "onnxruntime",
        "--out",
        str(out),
        "--no-report",
    )
    assert r.returncode == 0, r.stdout[-2000:]
    doc = json.loads((out / "results.json").read_text())
    cross = next(rec for rec in doc["records"] if rec["backend"] == "cross-backend")
    assert cross["status"] == "pass" and "fused vs simulated: numpy vs numpy-fused on y: 3/4 differ" in cross["reason"]
    labelled = [d for d in doc["diffs"] if d["fused_vs_simulated"] and not d["agree"]]
    assert {tuple(d["backends"]) for d in labelled} == {("numpy", "numpy-fused"), ("numpy-fused", "onnxruntime")}
    assert all(d["max_steps"] == 1 for d in labelled)
    # Two simulating backends are compared strictly: numpy and onnxruntime agree.
    plain = [d for d in doc["diffs"] if not d["fused_vs_simulated"]]
    assert plain and all(d["agree"] for d in plain)


def test_an_undeclared_disagreement_between_simulations_still_fails(tmp_path):
    from harness.crossdiff import cross_backend_verdict
    from harness.caseload import load_file
    from harness.execute import Outcome

    case = load_file(REPO / "cases" / "layers" / "fused-vs-simulated.yaml", REPO / "cases")[0]
    good = np.array([[[[3, 10, 24, 0]]]], np.int8)
    bad = np.array([[[[3, 10, 24, 1]]]], np.int8)
    verdict, _ = cross_backend_verdict(
        case, {"numpy": ("1", Outcome(outputs={"y": good})), "onnxruntime": ("1", Outcome(outputs={"y": bad}))}
    )
    assert verdict.status == "fail"

"""`qdq import` of broken ONNX models: one line naming the model and what is wrong, exit 2, nothing written (three
of these were tracebacks, and three wrote a qdq.yaml that did not load)."""

from __future__ import annotations

import pytest

from conftest import run_qdq

onnx = pytest.importorskip("onnx")


def _nodes(model, op):
    return [n for n in model.graph.node if n.op_type == op]


def _truncated(model, path):
    data = model.SerializeToString()
    path.write_bytes(data[: len(data) // 2])


def _dq_without_scale(model, path):
    del _nodes(model, "DequantizeLinear")[0].input[1:]
    onnx.save(model, path)


def _q_without_input(model, path):
    _nodes(model, "QuantizeLinear")[0].input[0] = ""
    onnx.save(model, path)


def _self_loop(model, path):
    q = _nodes(model, "QuantizeLinear")[0]
    q.input[0] = q.output[0]
    onnx.save(model, path)


def _cycle(model, path):
    q = _nodes(model, "QuantizeLinear")[0]
    dq = next(n for n in _nodes(model, "DequantizeLinear") if n.input[0] == q.output[0])
    q.input[0] = dq.output[0]
    onnx.save(model, path)


def _dangling_scale(model, path):
    _nodes(model, "QuantizeLinear")[0].input[1] = "nonexistent"
    onnx.save(model, path)


def _empty(model, path):
    path.write_bytes(b"")


BROKEN = {
    "truncated-protobuf": (_truncated, "not a readable ONNX model"),
    "dequantize-without-scale": (_dq_without_scale, "lacks its input or its scale"),
    "quantize-without-input": (_q_without_input, "lacks its input or its scale"),
    "self-loop": (_self_loop, "which no earlier node"),
    "cycle": (_cycle, "which no earlier node"),
    "dangling-scale": (_dangling_scale, "'nonexistent'"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_model_is_one_line_exit_2_and_nothing_written(tmp_path, name):
    import qat_model

    break_it, fragment = BROKEN[name]
    good = tmp_path / "good.onnx"
    qat_model.save(good)
    model = onnx.load(str(good))
    bad = tmp_path / f"{name}.onnx"
    break_it(model, bad)
    out = tmp_path / "cases" / "imported"
    done = run_qdq("import", str(bad), "-o", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert fragment in done.stderr and str(bad) in done.stderr
    assert not out.exists()


def test_an_empty_file_imports_nothing_and_says_so(tmp_path):
    bad = tmp_path / "empty.onnx"
    bad.write_bytes(b"")
    done = run_qdq("import", str(bad), "-o", str(tmp_path / "out"))
    assert done.returncode == 1 and "nothing written" in done.stderr and not (tmp_path / "out").exists()

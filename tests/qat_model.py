"""A small QAT-style ONNX model built with onnx.helper in the exporters' patterns (pytorch_quantization: Q/DQ pairs
on activations per tensor and on float weights per channel; Model Optimizer: INT8 weight codes dequantized)."""

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto as T

rng = np.random.default_rng(0)
W = rng.normal(0, 0.2, (4, 3, 3, 3)).astype(np.float32)
Wq = np.clip(np.rint(rng.normal(0, 0.2, (4, 4, 3, 3)) / 0.01), -127, 127).astype(np.int8)
sw = np.array([0.01, 0.02, 0.015, 0.01], np.float32)
W2 = rng.normal(0, 0.1, (16, 8)).astype(np.float32)
inits = [
    numpy_helper.from_array(W, "W"),
    numpy_helper.from_array(sw, "sw"),
    numpy_helper.from_array(np.zeros(4, np.int8), "zw"),
    numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
    numpy_helper.from_array(np.array(0, np.int8), "zx"),
    numpy_helper.from_array(Wq, "Wq"),
    numpy_helper.from_array(W2, "W2"),
    numpy_helper.from_array(np.full(8, 0.004, np.float32), "sw2"),
    numpy_helper.from_array(np.zeros(8, np.int8), "zw2"),
]
nodes = [
    # pytorch_quantization style: activation Q/DQ per tensor, weight Q/DQ per channel on a float weight
    helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="x_q"),
    helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="x_dq"),
    helper.make_node("QuantizeLinear", ["W", "sw", "zw"], ["Wqq"], name="w_q", axis=0),
    helper.make_node("DequantizeLinear", ["Wqq", "sw", "zw"], ["Wd"], name="w_dq", axis=0),
    helper.make_node("Conv", ["xd", "Wd"], ["c"], name="conv", pads=[1, 1, 1, 1]),
    # the same activation config again (deduplicated)
    helper.make_node("QuantizeLinear", ["c", "sx", "zx"], ["cq"], name="c_q"),
    helper.make_node("DequantizeLinear", ["cq", "sx", "zx"], ["cd"], name="c_dq"),
    # ModelOpt style: weights stored as INT8 codes
    helper.make_node("DequantizeLinear", ["Wq", "sw"], ["Wd2"], name="w2_dq", axis=0),
    helper.make_node("Conv", ["cd", "Wd2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
    helper.make_node("Flatten", ["c2"], ["f"], axis=1),
]
g = helper.make_graph(
    nodes,
    "qat",
    [helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])],
    [helper.make_tensor_value_info("c2", T.FLOAT, [1, 4, 4, 4])],
    initializer=inits,
)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(m)


def save(path):
    onnx.save(m, str(path))

"""Small float models made with onnx.helper and quantized in-process by ONNX Runtime's own quantizer
(`quantize_static`, QDQ format), as a user's export would be: a conv net with bias, stride, padding, a depthwise conv,
a residual add, global pooling and a Gemm."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def convnet(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, shape, scale=0.2):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("w1", [8, 3, 3, 3]),
        init("b1", [8], 0.1),
        init("w2", [8, 1, 3, 3]),
        init("b2", [8], 0.1),
        init("w3", [8, 8, 1, 1]),
        init("b3", [8], 0.1),
        init("wf", [8, 10]),
        init("bf", [10], 0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="dwconv"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="pwconv"),
        helper.make_node("Add", ["c3", "r1"], ["a"], name="residual"),
        helper.make_node("GlobalAveragePool", ["a"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def quantize(float_model: Path, out: Path, *, per_channel: bool, unsigned: bool, symmetric: bool = False) -> None:
    """`symmetric`: activations quantized symmetrically too (zero point 0), as TensorRT's contract requires."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    import onnx

    dims = onnx.load(str(float_model)).graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value for d in dims]

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    kind = QuantType.QUInt8 if unsigned else QuantType.QInt8
    quantize_static(
        str(float_model),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=kind,
        weight_type=kind,
        extra_options={"ActivationSymmetric": symmetric},
    )


def transformer(path: Path, hidden: int = 16, tokens: int = 8) -> None:
    """A transformer block: Q, K, V projections (MatMul with a 2-D weight on a [1, tokens, hidden] activation), the
    attention MatMuls of two activations (Q x K^T through a Transpose, then P x V) with a Softmax between them, an
    output projection with its bias (Add) and the residual Add."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)

    def init(name, shape, scale=0.25):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init(n, [hidden, hidden]) for n in ("wq", "wk", "wv", "wo")] + [init("bo", [hidden], 0.1)]
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k_proj"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="v_proj"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="k_transpose"),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="qk"),
        helper.make_node("Softmax", ["scores"], ["p"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["p", "v"], ["ctx"], name="pv"),
        helper.make_node("MatMul", ["ctx", "wo"], ["o"], name="o_proj"),
        helper.make_node("Add", ["o", "bo"], ["ob"], name="o_bias"),
        helper.make_node("Add", ["ob", "x"], ["y"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes,
        "transformer_block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, tokens, hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def quantize_int4_blocks(float_model: Path, out: Path, block_size: int = 8) -> None:
    """ONNX Runtime's own INT4 weight quantizer in QDQ form: each MatMul's constant weight becomes INT4 codes and a
    DequantizeLinear with `axis` and `block_size` (symmetric, zero point 0)."""
    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(float_model)), bits=4, block_size=block_size, is_symmetric=True, quant_format=QuantFormat.QDQ
    )
    quantizer.process()
    onnx.save(quantizer.model.model, str(out))

"""The documented contract on a whole ONNX model (a case with `model: {onnx: file}`): ONNX's reference evaluator runs
the model's float operators, and every QuantizeLinear / DequantizeLinear is this reference's own (plugins/numpy/
backend.py): x * float32(1/s), round half to even, saturation; the contract's refusals (a non-zero zero point, a type
outside INT8/INT4/FP8/FP4, a scale that is not strictly positive) are the build's refusal of the whole model, named
by the first node that has one, as TensorRT's parser refuses a model at its first bad node.

What it shows: where TensorRT's documented Q/DQ arithmetic takes a real model apart from ONNX's, node by node (the
runner reports every Q/DQ output as a probe, like the ONNX backends). The float operators in between are ONNX's,
not TensorRT's kernels.
"""

from __future__ import annotations

import numpy as np

from harness.cases.case import Case
from harness.cases.errors import QdqError
from harness.engine.backend import Runner

# ONNX TensorProto element types -> the contract's quantized types (the only ones it takes)
QUANTIZED = {3: "int8", 22: "int4", 17: "fp8", 23: "fp4"}


def _contract_ops():
    """QuantizeLinear and DequantizeLinear for onnx.reference, with the contract's arithmetic (its refusals are
    checked once, at load, by refuse_first)."""
    from onnx.helper import np_dtype_to_tensor_dtype
    from onnx.reference.op_run import OpRun
    from onnx.reference.ops.op_quantize_linear import _reshape_input

    from plugins.numpy.backend import dequantize, quantize

    def quantized_type(code: int) -> str:
        # the load already refused every node the contract refuses (refuse_first): here the type is only looked up
        return QUANTIZED[code]

    class QuantizeLinear(OpRun):
        op_domain = ""

        def _run(self, x, scale, zero_point=None, axis=1, saturate=True, block_size=0, output_dtype=None, **_):
            code = np_dtype_to_tensor_dtype(zero_point.dtype) if zero_point is not None else output_dtype or 2
            to = quantized_type(code)
            broadcast = _reshape_input(scale, x.shape, 1 if axis is None else axis, block_size or None)
            return (quantize(x, np.broadcast_to(broadcast, x.shape), to),)

    class DequantizeLinear(OpRun):
        op_domain = ""

        def _run(self, x, scale, zero_point=None, axis=1, block_size=0, output_dtype=None, **_):
            broadcast = _reshape_input(scale, x.shape, 1 if axis is None else axis, block_size or None)
            out = (
                "float16" if scale.dtype == np.float16 else "bfloat16" if scale.dtype.name == "bfloat16" else "float32"
            )
            return (dequantize(x, np.broadcast_to(broadcast, x.shape), out),)

    return [QuantizeLinear, DequantizeLinear]


def refuse_first(model) -> None:
    """The contract's refusal of the first Q/DQ node that breaks it, as a build refusal (TensorRT's parser refuses a
    model at its first bad node): a scale or zero point that is no initializer, a quantized type outside
    INT8/INT4/FP8/FP4, a non-zero zero point, a scale that is not strictly positive."""
    from onnx import numpy_helper

    from plugins.onnx.modelcase import elem_types

    inits = {i.name: i for i in model.graph.initializer}
    types = elem_types(model)
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        name = node.name or node.output[0]
        scale_name = node.input[1]
        zero_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if scale_name not in inits:
            raise QdqError("scale-not-constant", f"{node.op_type} {name!r}: scale {scale_name!r} is not a constant")
        if zero_name is not None and zero_name not in inits:
            raise QdqError("zero-point-not-constant", f"{node.op_type} {name!r}: zero point is not a constant")
        if node.op_type == "QuantizeLinear":
            attrs = {a.name: a.i for a in node.attribute}
            code = inits[zero_name].data_type if zero_name else attrs.get("output_dtype") or 2
        else:
            code = inits[node.input[0]].data_type if node.input[0] in inits else types.get(node.input[0], 0)
        if code not in QUANTIZED:
            raise QdqError(
                "unsupported-type", f"{node.op_type} {name!r}: quantized type {code} (ONNX); INT8/INT4/FP8/FP4 only"
            )
        if zero_name is not None and np.any(numpy_helper.to_array(inits[zero_name]).astype(np.float64) != 0):
            raise QdqError("zero-point-nonzero", f"{node.op_type} {name!r}: zero point must only contain zeros")
        if not np.all(numpy_helper.to_array(inits[scale_name]).astype(np.float64) > 0):
            raise QdqError(
                "scale-not-positive", f"{node.op_type} {name!r}: scale coefficients must be strictly positive"
            )


class ContractModelRunner(Runner):
    """The model with its probes, run by onnx.reference with the contract's Q/DQ."""

    def __init__(self, case: Case):
        from plugins.onnx.modelcase import load_model, probed_case

        self.case = case
        refuse_first(load_model(case))
        self.model, self.probes = probed_case(case)
        self.details = {"probes": self.probes}
        self.evaluator = None

    def activate(self) -> None:
        from onnx.reference import ReferenceEvaluator

        from plugins.onnx.modelcase import for_reference

        try:
            self.evaluator = ReferenceEvaluator(for_reference(self.model), new_ops=_contract_ops())
        except QdqError:
            raise
        except Exception as exc:
            raise QdqError("build-failed", str(exc).splitlines()[0], native=str(exc)) from None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from plugins.onnx.modelcase import run_probed

        return run_probed(self.case, self.evaluator.run, self.probes, feeds)

"""`tensorrt-onnx`: the case exported to ONNX (harness/onnx_export.py) and imported with TensorRT's OnnxParser,
the path real QAT models take (pytorch_quantization, TensorRT Model Optimizer); then built and run like
`tensorrt`. Parser errors map to the shared categories."""

from __future__ import annotations

from harness.case import Case
from harness.onnx_export import export
from harness.trt_network import Built, build_engine
from plugins.tensorrt_backend import TensorRTBackend


class TensorRTOnnxBackend(TensorRTBackend):
    name = "tensorrt-onnx"
    product = "NVIDIA TensorRT (ONNX parser)"
    description = "the case as ONNX QuantizeLinear/DequantizeLinear, parsed by TensorRT's OnnxParser, run on a GPU"

    def _build(self, api, case: Case) -> Built:
        model = export(case).model.SerializeToString()
        return build_engine(api, case, case.target.get("compute_capability"), onnx_model=model,
                            timing_cache=self._timing_cache(api))

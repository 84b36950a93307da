"""`tensorrt-onnx`: the case exported to ONNX (plugins/onnx/export.py) and imported with TensorRT's OnnxParser,
the path real QAT models take (pytorch_quantization, TensorRT Model Optimizer); then built and run like
`tensorrt`. Parser errors map to the shared categories."""

from __future__ import annotations

from harness.cases.case import Case
from plugins.tensorrt.network import Built, build_engine
from plugins.tensorrt.backend import TensorRTBackend


class TensorRTOnnxBackend(TensorRTBackend):
    name = "tensorrt-onnx"
    product = "NVIDIA TensorRT (ONNX parser)"
    description = "the case as ONNX QuantizeLinear/DequantizeLinear, parsed by TensorRT's OnnxParser, run on a GPU"

    def _build(self, api, case: Case) -> Built:
        from plugins.onnx.export import export, opset_for  # onnx is imported when used, not when listed

        if case.model is not None:
            model = case.model.path.read_bytes()  # a whole ONNX model, as its exporter wrote it
        else:
            model = export(case, opset_for(case, self.config.option("opset"))).model.SerializeToString()
        return build_engine(
            api, case, case.target.get("compute_capability"), onnx_model=model, timing_cache=self._timing_cache(api)
        )

    def model_skip_reason(self, case: Case) -> str | None:
        return None if case.model.format == "onnx" else f"parses ONNX models, not {case.model.format}"

    def repro(self, case: Case) -> str | None:
        if case.model is not None:
            return None  # the model file is its own reproduction
        from plugins.onnx.export import opset_for
        from plugins.tensorrt.repro import onnx_parser_script

        return onnx_parser_script(case, opset_for(case, self.config.option("opset")))

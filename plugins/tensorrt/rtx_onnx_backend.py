"""`tensorrt-rtx-onnx`: the case's ONNX model through TensorRT-RTX's real OnnxParser (NVIDIA's parser ships in the
RTX wheel and parses on a CPU), then built like `tensorrt-rtx`: real parser and builder verdicts without a GPU.

An interpretation check runs between parsing and building: every Quantize/Dequantize layer the parser made is read
back (output type, axis) and compared with what the ONNX model means (plugins/tensorrt/interpretation.py). A
difference, e.g. a QuantizeLinear with no zero point and no output_dtype (ONNX: UINT8) parsed as INT8, is the
verdict `interpretation-mismatch` naming each node, after the build has been tried (a build refusal comes first);
a case declares such a difference with an override for this backend and version. TensorRT-RTX is not TensorRT.
"""

from __future__ import annotations

from harness.cases.case import Case
from harness.cases.errors import QdqError
from plugins.tensorrt.network import Built, build_engine
from plugins.tensorrt.rtx_backend import TensorRTRTXBackend


class TensorRTRTXOnnxBackend(TensorRTRTXBackend):
    name = "tensorrt-rtx-onnx"
    product = "NVIDIA TensorRT-RTX's ONNX parser (not TensorRT: a separate product; parses and builds on the CPU)"
    description = "the case as ONNX, parsed by TensorRT-RTX's OnnxParser, its Q/DQ reading checked against ONNX"

    def _build(self, api, case: Case) -> Built:
        from plugins.onnx.export import export  # onnx is imported when used, not when listed
        from plugins.tensorrt import interpretation

        if case.model is not None:
            from plugins.onnx.modelcase import load_model

            model = load_model(case)  # a whole ONNX model, as its exporter wrote it
        else:
            model = export(case, self.config.option("opset")).model
        meaning = interpretation.expected(interpretation.onnx_semantics(model), case.interpretation)
        found: list[str] = []

        def check(network):
            found.extend(interpretation.differences(meaning, interpretation.parsed(api.trt, network)))

        built = build_engine(
            api,
            case,
            case.target.get("compute_capability"),
            onnx_model=model.SerializeToString(),
            timing_cache=self._timing_cache(api),
            inspect_network=check,
        )
        if found:
            raise QdqError(
                "interpretation-mismatch", "; ".join(found) + " (the engine builds)", native="\n".join(found)
            )
        return built

    def model_skip_reason(self, case: Case) -> str | None:
        return None if case.model.format == "onnx" else f"parses ONNX models, not {case.model.format}"

    def repro(self, case: Case) -> str | None:
        if case.model is not None:
            return None  # the model file is its own reproduction
        from plugins.onnx.export import opset_for
        from plugins.tensorrt.repro import onnx_parser_script

        return onnx_parser_script(
            case, opset_for(case, self.config.option("opset"))
        )  # the model and its inputs, for NVIDIA's tools

"""`onnx-reference`: the case exported to ONNX and run by `onnx.reference.ReferenceEvaluator`.

The ONNX specification's executable reference. It is no oracle for errors or non-finite values: it runs some
invalid models without complaint (mis-shaped block scales, types invalid at the opset) and turns NaN, ±Inf and
|x/s| >= 2^31 into the type's minimum. Cases say so through overrides. It has no DequantizeLinear before opset 19,
so models are exported at opset 19 or higher.
"""

from __future__ import annotations

import numpy as np

from harness.engine.backend import Availability, Runner
from harness.cases.case import Case
from harness.cases.errors import QdqError
from plugins.onnx.common import OnnxBackend, categorizer

MIN_OPSET = 19
_PATTERNS = [
    (r"axis is out of boundary|axis .* out of", "invalid-axis"),
    (r"operands could not be broadcast|must be a vector or a number", "scale-shape-mismatch"),
    (r"should be zero for float8", "zero-point-nonzero"),
    (r"No implementation for operator|unsupported type|Type Error", "unsupported-type"),
]

categorize = categorizer(_PATTERNS)


class _Runner(Runner):
    def __init__(self, case: Case, model, opset: int):
        self.case, self.model, self.evaluator = case, model, None
        self.details = {"opset": opset}

    def activate(self) -> None:
        from onnx.reference import ReferenceEvaluator

        try:
            self.evaluator = ReferenceEvaluator(self.model)
        except Exception as exc:
            raise QdqError(categorize(str(exc), "build"), str(exc).splitlines()[0], native=str(exc)) from None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from harness.cases import dtypes
        from harness.cases.network import NetworkInfo

        try:
            with np.errstate(all="ignore"):
                values = self.evaluator.run(self.case.outputs, feeds)
        except Exception as exc:
            raise QdqError(
                categorize(f"{type(exc).__name__}: {exc}", "run"),
                f"{type(exc).__name__}: {exc}".splitlines()[0],
                native=f"{type(exc).__name__}: {exc}",
                phase="run",
            ) from None
        info = NetworkInfo(self.case)
        return {
            name: np.asarray(v).astype(dtypes.dtype(info.dtype(name)).np_type)
            for name, v in zip(self.case.outputs, values)
        }


class _ModelRunner(Runner):
    """A whole ONNX model (`model: {onnx: file}`) with its probes (plugins/onnx/modelcase.py)."""

    def __init__(self, case: Case):
        from plugins.onnx.modelcase import probed_case

        self.case = case
        self.model, probes = probed_case(case)
        self.details = {"probes": probes}
        self.evaluator = None

    def activate(self) -> None:
        from onnx.reference import ReferenceEvaluator

        from plugins.onnx.modelcase import for_reference

        try:
            self.evaluator = ReferenceEvaluator(for_reference(self.model))
        except Exception as exc:
            raise QdqError(categorize(str(exc), "build"), str(exc).splitlines()[0], native=str(exc)) from None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from plugins.onnx.modelcase import run_probed

        return run_probed(self.case, self.evaluator.run, self.details["probes"], feeds)


class OnnxReferenceBackend(OnnxBackend):
    name = "onnx-reference"
    product = "onnx.reference.ReferenceEvaluator (the ONNX specification's Python reference)"
    description = "the case as an ONNX model, run by ONNX's reference evaluator; no oracle for errors or NaN/Inf"
    isolated = False  # pure Python: in the pytest process (with the same timeout)

    def availability(self) -> Availability:
        try:
            import onnx
            from onnx.reference import ReferenceEvaluator  # noqa: F401
        except ImportError as exc:
            return Availability(False, None, f"module missing: {exc.name} (pip install 'qdq-harness[onnx]')")
        return Availability(True, onnx.__version__, "")

    def skip_reason(self, case: Case) -> str | None:
        if case.model is not None and case.model.format != "onnx":
            return f"reads ONNX models, not {case.model.format}"
        return None

    def load(self, case: Case) -> Runner:
        if case.model is not None:
            return _ModelRunner(case)
        from plugins.onnx.export import checked_export, opset_for  # onnx is imported when used, not when listed

        opset = opset_for(case, self.config.option("opset"), MIN_OPSET)
        exported = checked_export(case, opset, categorize)
        runner = _Runner(case, exported.model, exported.opset)
        runner.artifacts["model.onnx"] = exported.model.SerializeToString()
        return runner

    def repro(self, case: Case) -> str | None:
        if case.model is not None:
            return None  # the model file is its own reproduction
        from plugins.onnx.export import opset_for
        from plugins.onnx.repro import reference_script

        return reference_script(case, opset_for(case, self.config.option("opset"), MIN_OPSET))

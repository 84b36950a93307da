"""`onnxruntime`: the case exported to ONNX (plugins/onnx/export.py) and run on ONNX Runtime's CPU provider.

ONNX semantics, not TensorRT's: QuantizeLinear divides by the scale, applies zero points, defaults `axis` to 1 and
accepts any scale sign. Shape errors arrive at `run()`, not at session creation. Its Python API cannot return INT4
tensors (an appended DequantizeLinear with scale 1 reads the codes out) and returns FP8 as raw bytes (their bits
are reinterpreted as float8_e4m3fn).
"""

from __future__ import annotations

import numpy as np

from harness.cases import dtypes
from harness.engine.backend import Availability, Runner
from harness.cases.case import Case
from harness.cases.errors import QdqError
from harness.engine.twin import TwinProbe
from plugins.onnx.common import OnnxBackend, categorizer
from plugins.onnx.modelcase import reads

# Native message -> category, first match wins (messages measured with onnxruntime 1.32, see shared notes).
_PATTERNS = [
    (r"IsAxisInRange|axis .* is not in valid range|axis.*out of", "invalid-axis"),
    (r"For per axis quantization, scale must be 1D tensor with size", "scale-shape-mismatch"),
    (r"ceil\(Di/block_size\)|block_size", "block-shape-invalid"),
    (r"should have no zero point or all zero points should be 0", "zero-point-nonzero"),
    (r"zero_point.*shape|x_zero_point must|y_zero_point must|scale and zero_point", "zero-point-shape-mismatch"),
    (
        r"NOT_IMPLEMENTED|Could not find an implementation|Type Error|unsupported type|type.*is invalid",
        "unsupported-type",
    ),
]

categorize = categorizer(_PATTERNS)


class _Runner(Runner):
    def __init__(self, case: Case, model_bytes: bytes, readouts: dict[str, str], opset: int):
        self.case, self.model_bytes, self.readouts = case, model_bytes, readouts
        self.session = None
        self.details = {"opset": opset, "readouts": sorted(readouts)}

    def activate(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self.model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise QdqError(categorize(str(exc), "build"), str(exc).splitlines()[0], native=str(exc)) from None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fetch = [self.readouts.get(name, name) for name in self.case.outputs]
        try:
            results = dict(zip(fetch, self.session.run(fetch, {k: ort_feed(v) for k, v in feeds.items()})))
        except Exception as exc:
            raise QdqError(
                categorize(str(exc), "run"), str(exc).splitlines()[0], native=str(exc), phase="run"
            ) from None
        return {name: read_output(name, results, self.case, self.readouts) for name in self.case.outputs}

    def deactivate(self) -> None:
        self.session = None


class _ModelRunner(_Runner):
    """A whole ONNX model (`model: {onnx: file}`) with its probes (plugins/onnx/modelcase.py)."""

    def __init__(self, case: Case):
        from plugins.onnx.modelcase import elem_types, probed_case

        model, probes = probed_case(case)
        super().__init__(
            case, model.SerializeToString(), {}, model.opset_import[0].version if model.opset_import else 0
        )
        self.types = elem_types(model)
        self.details = {"opset": self.details["opset"], "probes": probes}

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from plugins.onnx.export import ONNX_TYPES
        from plugins.onnx.modelcase import run_probed

        def run(names, given):
            return self.session.run(names, {k: ort_feed(v) for k, v in given.items()})

        fp8 = {code: dtypes.dtype(name).np_type for name, code in ONNX_TYPES.items() if name.startswith("fp8")}
        out = run_probed(self.case, run, self.details["probes"], feeds)
        for name, value in out.items():  # ORT hands FP8 back as its bytes
            if value.dtype == np.uint8 and self.types.get(name) in fp8:
                out[name] = value.view(fp8[self.types[name]])
        return out


PACKED_FEEDS = ("int4", "uint4")  # 4-bit integer inputs ORT takes packed (measured, 1.32); FP4 has no CPU kernel


def ort_feed(value: np.ndarray):
    """A network input as ONNX Runtime takes it: numpy's own types as they are; FP8 and BF16 (ml_dtypes, one or two
    bytes per element) as an OrtValue of the matching ONNX type over the same bytes; INT4/UINT4 packed two codes per
    byte, low nibble first, at the start of a buffer with the tensor's shape and element count (ORT reads its packed
    layout from that buffer: handing it one code per byte reads [0, 1, -1, 7, -8] as [0, 0, 1, 0, -1], silently)."""
    t = dtypes.dtype_of(np.asarray(value))
    if t.numpy_native:
        return value
    import onnxruntime as ort

    from plugins.onnx.export import ONNX_TYPES

    if t.name in PACKED_FEEDS:
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(pack_nibbles(value), ONNX_TYPES[t.name])
    raw = np.ascontiguousarray(value).view(np.dtype(f"u{value.dtype.itemsize}"))
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, ONNX_TYPES[t.name])


def pack_nibbles(value: np.ndarray) -> np.ndarray:
    """4-bit codes packed low nibble first into the first ceil(n/2) bytes of an int8 array of `value`'s shape."""
    codes = (np.asarray(value).astype(np.int16).reshape(-1) & 0x0F).astype(np.uint8)
    if codes.size % 2:
        codes = np.append(codes, np.uint8(0))
    packed = codes[0::2] | (codes[1::2] << 4)
    carrier = np.zeros(np.shape(value), np.int8)
    carrier.reshape(-1).view(np.uint8)[: packed.size] = packed
    return carrier


def unfeedable(case: Case) -> str | None:
    """Why ONNX Runtime's Python API cannot take one of the case's network inputs, or None."""
    for layer in case.network:
        if layer.op != "input":
            continue
        t = dtypes.dtype(layer.output_type)
        if t.bits < 8 and t.name not in PACKED_FEEDS:
            return (
                f"input {layer.name!r} is {layer.output_type}: ONNX Runtime's Python API cannot feed it "
                "(4-bit integers are fed packed; other sub-byte types are not)"
            )
    return None


def read_output(name: str, results: dict, case: Case, readouts: dict[str, str]) -> np.ndarray:
    """ORT's value as the case's declared type: read-outs cast back, FP8 bytes reinterpreted."""
    from harness.cases.network import NetworkInfo

    want = dtypes.dtype(NetworkInfo(case).dtype(name)).np_type
    value = np.asarray(results[readouts.get(name, name)])
    if value.dtype == want:
        return value
    if value.dtype == np.uint8 and want.itemsize == 1 and not np.issubdtype(want, np.integer):
        return value.view(want)
    return value.astype(want)


class OnnxRuntimeBackend(OnnxBackend):
    name = "onnxruntime"
    product = "ONNX Runtime, CPUExecutionProvider (ONNX QuantizeLinear/DequantizeLinear semantics)"
    description = "the case as an ONNX model, run by ONNX Runtime's CPU provider"
    isolated = True  # native code: a crash in a kernel fails one case, not the pytest worker

    def __init__(self):
        self._twins: TwinProbe | None = None

    def availability(self) -> Availability:
        try:
            import onnx  # noqa: F401
            import onnxruntime as ort
        except ImportError as exc:
            return Availability(False, None, f"module missing: {exc.name} (pip install 'qdq-harness[onnx]')")
        if "CPUExecutionProvider" not in ort.get_available_providers():
            return Availability(False, ort.__version__, "CPUExecutionProvider is not available")
        return Availability(True, ort.__version__, "")

    def skip_reason(self, case: Case) -> str | None:
        if case.model is not None:
            return None if reads(case) else f"reads ONNX models, not {case.model.format}"
        reason = unfeedable(case)
        if reason:
            return reason
        if self._twins is None:
            self._twins = TwinProbe(f"{self.name} (CPU)", self.availability().version, self._run_twin)
        return self._twins.skip_reason(case)

    def _run_twin(self, twin: Case) -> None:
        from harness.engine.execute import make_inputs

        with self.load(twin) as runner:
            runner.infer(make_inputs(twin))

    def load(self, case: Case) -> Runner:
        if reads(case):
            return _ModelRunner(case)
        from plugins.onnx.export import checked_export, opset_for  # onnx is imported when used, not when listed

        exported = checked_export(case, opset_for(case, self.config.option("opset")), categorize, readouts=True)
        runner = _Runner(case, exported.model.SerializeToString(), exported.readouts, exported.opset)
        runner.artifacts["model.onnx"] = runner.model_bytes
        return runner

    def repro(self, case: Case) -> str | None:
        if case.model is not None:
            return None  # the model file is its own reproduction
        from plugins.onnx.export import opset_for
        from plugins.onnx.repro import onnxruntime_script

        return onnxruntime_script(case, opset_for(case, self.config.option("opset")))

"""`tensorrt-rtx`: NVIDIA TensorRT-RTX, a *different product* (for RTX GPUs, version 1.x) whose real builder runs
on a CPU ("CPU-only AOT"). Its network and Q/DQ Python API are TensorRT 11.x's, so it shares the network code with
`tensorrt`; its build-time validation is NVIDIA's own (non-zero zero points, scale/axis mismatches, FP8 on a target
without FP8 are refused). Without a GPU it gives real *build* verdicts: an expected error must be the refusal, and
every other case must build (each error case has a valid twin that builds); values need an engine run, so they are
a skip "engine built, no GPU to run it". Its verdicts are never TensorRT's, and its version (1.x) never matches a
`tensorrt` version specifier: overrides name `tensorrt-rtx` explicitly.
"""

from __future__ import annotations

import re

from harness.engine.backend import Availability, Runner
from harness.cases.case import Case
from harness.cases.errors import BuiltNotRun, QdqError
from plugins.tensorrt.runtime import gpu_status
from plugins.tensorrt.backend import TensorRTBackend, TrtRunner

# What TensorRT-RTX 1.7 logs when the GPU's compute capability is not one it supports (measured on an H100:
# "The engine cannot run on this GPU, which has compute capability 9.0. Supported compute capabilities: ...").
_UNSUPPORTED_GPU = re.compile(r"cannot run on this GPU|does not support this compute capability")


class _BuildOnlyRunner(TrtRunner):
    """Runs the engine where the GPU allows; else the case is a build verdict (BuiltNotRun) with the reason."""

    def __init__(self, api, built, backend: "TensorRTRTXBackend"):
        super().__init__(api, built)
        self.backend = backend
        from plugins.tensorrt.buildlog import precision_details

        # The engine's layers as NVIDIA's builder printed them: `runs_quantized` is judged on a CPU too.
        self.details.update(precision_details(built.messages))

    def activate(self) -> None:
        built = f"engine built ({len(self.built.plan)} bytes, {self.built.typing}ly typed)"
        usable, why = gpu_status()
        if not usable:
            raise BuiltNotRun(f"{built}, no GPU to run it ({why})")
        if self.backend.unsupported_gpu:  # decided once per process, on the first engine
            raise BuiltNotRun(f"{built}, {self.backend.unsupported_gpu}", kind="unsupported-gpu")
        try:
            super().activate()
        except QdqError as exc:
            if not _UNSUPPORTED_GPU.search(exc.native):
                raise
            cc = self.backend.details().get("compute_capability", "unknown")
            self.backend.unsupported_gpu = (
                f"this GPU (compute capability {cc}) cannot run TensorRT-RTX engines; "
                f"NVIDIA's runtime: {exc.native.strip()}"
            )
            raise BuiltNotRun(f"{built}, {self.backend.unsupported_gpu}", kind="unsupported-gpu") from None


class TensorRTRTXBackend(TensorRTBackend):
    name = "tensorrt-rtx"
    product = "NVIDIA TensorRT-RTX (not TensorRT: a separate product for RTX GPUs; builds on the CPU)"
    description = "TensorRT-RTX's real builder; build verdicts on a CPU, values only on an RTX-class GPU"
    module_name = "tensorrt_rtx"
    needs_gpu = False

    def availability(self) -> Availability:
        a = super().availability()
        if not a.available and a.reason.startswith("module missing"):
            return Availability(False, None, "module missing: tensorrt_rtx (pip install 'qdq-harness[rtx]')")
        return a

    def __init__(self):
        super().__init__()
        self.unsupported_gpu: str | None = None  # NVIDIA's refusal of this GPU, once seen

    def load(self, case: Case) -> Runner:
        return _BuildOnlyRunner(self.api(), self.build(case), self)

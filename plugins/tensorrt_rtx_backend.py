"""`tensorrt-rtx`: NVIDIA TensorRT-RTX, a *different product* (for RTX GPUs, version 1.x) whose real builder runs
on a CPU ("CPU-only AOT"). Its network and Q/DQ Python API are TensorRT 11.x's, so it shares the network code with
`tensorrt`; its build-time validation is NVIDIA's own (non-zero zero points, scale/axis mismatches, FP8 on a target
without FP8 are refused). Without a GPU it gives real *build* verdicts: an expected error must be the refusal, and
every other case must build (each error case has a valid twin that builds); values need an engine run, so they are
a skip "engine built, no GPU to run it". Its verdicts are never TensorRT's, and its version (1.x) never matches a
`tensorrt` version specifier: overrides name `tensorrt-rtx` explicitly.
"""

from __future__ import annotations

from harness.backend import Availability, Runner
from harness.case import Case
from harness.errors import BuiltNotRun
from harness.trt_runtime import gpu_status
from plugins.tensorrt_backend import TensorRTBackend, TrtRunner


class _BuildOnlyRunner(TrtRunner):
    def activate(self) -> None:
        usable, why = gpu_status()
        if not usable:
            raise BuiltNotRun(f"engine built ({len(self.built.plan)} bytes, {self.built.typing}ly typed), "
                              f"no GPU to run it ({why})")
        super().activate()


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

    def load(self, case: Case) -> Runner:
        return _BuildOnlyRunner(self.api(), self.build(case))

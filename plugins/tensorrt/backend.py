"""`tensorrt`: the case built with TensorRT's network API, as the documents do (add_input, add_constant, add_cast,
add_quantize/add_dequantize, axis, set_input(2, zero_point)), serialized and run on a GPU with cuda-python.

Supports 8.6, 10.x and 11.x through plugins/tensorrt/compat.py (branches chosen by the module's features). On 8.6 and
10.x the network is weakly typed with precision flags; `tensorrt-strongly-typed` builds the same case strongly
typed (10.x; on 11.x both are the same, strong typing being always on). Needs the full TensorRT libraries and a
GPU; elsewhere it is unavailable with the precise reason, and every case is a skip.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path

import harness

from harness.engine.backend import Availability, Backend, Runner
from harness.cases.case import Case
from plugins.tensorrt.compat import TrtApi
from plugins.tensorrt.network import Built, build_engine, make_logger
from plugins.tensorrt.runtime import EngineRunner, gpu_status
from harness.engine.twin import TwinProbe


class TrtRunner(Runner):
    def __init__(self, api: TrtApi, built: Built):
        self.api, self.built = api, built
        self.engine_runner: EngineRunner | None = None
        self.details = {
            "typing": built.typing,
            "plan_bytes": len(built.plan),
            "engine_cache": built.engine_cache,
            "builder_warnings": [m for s, m in built.messages if s == "WARNING"][:20],
        }

    def activate(self) -> None:
        self.engine_runner = EngineRunner(self.api.trt, self.built.plan, make_logger(self.api.trt))
        self.engine_runner.activate()
        try:
            info = self.engine_runner.layer_information()
        except Exception:  # the inspector is a diagnostic: its absence must not fail the case
            info = None
        if info:
            # A Q/DQ network that built but runs no INT8/FP8/INT4/FP4 layer fell back to float silently
            # (NVIDIA/TensorRT#4833): the values can still match, so say it in the record.
            from .inspector import precision_details

            self.details["layers"] = info[:20000]  # for the report; the verdict reads the parsed types below
            self.details.update(precision_details(info))
            self.details["quantized"] = bool(
                re.search(r'"Format/Datatype"\s*:\s*"[^"]*(Int8|INT8|FP8|Int4|INT4|FP4)', info)
            )

    def infer(self, feeds):
        outputs = self.engine_runner.infer(feeds)
        self.details["gpu_ms"] = self.engine_runner.gpu_ms  # the engine alone; the record's timings.infer adds copies
        return outputs

    def deactivate(self) -> None:
        if self.engine_runner is not None:
            self.engine_runner.deactivate()


class TensorRTBackend(Backend):
    name = "tensorrt"
    product = "NVIDIA TensorRT (network API)"
    description = "the case built with TensorRT's network API and run on a GPU"
    module_name = "tensorrt"
    strongly_typed = False
    needs_gpu = True
    isolated = True  # builds and runs in a worker process: a segfault or hang fails one case, not the run
    timeout_s = 600.0
    arithmetic = "fused"  # an engine runs DQ -> conv/matmul -> Q as one INT8 kernel where it can

    def __init__(self):
        self._twins: TwinProbe | None = None

    def module(self):
        return importlib.import_module(self.module_name)

    def worker_environment(self, worker_id: str) -> dict[str, str]:
        from plugins.tensorrt.gpus import pinned_environment

        return pinned_environment(worker_id)

    def availability(self) -> Availability:
        try:
            trt = self.module()
        except ImportError as exc:
            return Availability(
                False,
                None,
                f"module missing: {exc.name or self.module_name} (the package index "
                "holds only stubs that fetch NVIDIA's wheels at install time)",
            )
        except OSError as exc:
            return Availability(False, None, f"TensorRT libraries failed to load: {exc}")
        if self.needs_gpu:
            usable, why = gpu_status()
            if not usable:
                return Availability(False, trt.__version__, why, kind="no-gpu")
        return Availability(True, trt.__version__, "")

    def api(self) -> TrtApi:
        return TrtApi(self.module(), strongly_typed=self.strongly_typed)

    def details(self) -> dict:
        """TensorRT, CUDA runtime and driver versions, GPU name and compute capability, for the bundle."""
        out: dict = {}
        try:
            out[self.module_name] = self.module().__version__
            from plugins.tensorrt.runtime import cuda_runtime

            cudart = cuda_runtime()
            out["cuda_runtime"] = cudart.cudaRuntimeGetVersion()[1]
            out["cuda_driver"] = cudart.cudaDriverGetVersion()[1]
            err, count = cudart.cudaGetDeviceCount()
            if int(err) == 0 and count:
                _, props = cudart.cudaGetDeviceProperties(0)
                name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
                out.update(gpu=name.rstrip("\x00"), compute_capability=f"{props.major}.{props.minor}", gpus=count)
        except Exception as exc:  # details are informative: never fail a run for them
            out["details_error"] = f"{type(exc).__name__}: {exc}"
        return out

    def build(self, case: Case) -> Built:
        """Build, or reuse an engine cached on disk for the same case content, builder config, harness, TensorRT
        version and GPU (GPU backends only: a CPU-only RTX build is cheaper than the bookkeeping)."""
        api = self.api()
        if not self.needs_gpu:
            return self._build(api, case)
        key = json.dumps(
            [
                case.content_hash,
                self.name,
                api.typing,
                case.target,
                harness.__version__,
                api.version,
                self.details().get("gpu"),
            ],
            sort_keys=True,
        )
        path = self.config.cache / "engines" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.plan"
        if path.exists():
            return Built(path.read_bytes(), api.typing, [("INFO", f"engine from the cache: {path}")], "hit")
        built = self._build(api, case)
        built.engine_cache = "miss"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(built.plan)
        os.replace(tmp, path)
        return built

    def _build(self, api: TrtApi, case: Case) -> Built:
        return build_engine(api, case, case.target.get("compute_capability"), timing_cache=self._timing_cache(api))

    def _timing_cache(self, api: TrtApi) -> Path | None:
        if not self.needs_gpu:
            return None
        gpu = re.sub(r"[^A-Za-z0-9.]+", "-", str(self.details().get("gpu", "gpu")))
        return self.config.cache / "timing" / f"{self.module_name}-{api.version}-{gpu}.cache"

    def skip_reason(self, case: Case) -> str | None:
        if case.model is not None:
            return self.model_skip_reason(case)
        if self._twins is None:
            self._twins = TwinProbe(self.name, self.availability().version, self.build)
        target = case.target.get("compute_capability")
        return self._twins.skip_reason(case, f" for {target}" if target else "")

    def model_skip_reason(self, case: Case) -> str | None:
        """A whole model file: the network API builds layers written in the case format, not a model."""
        return (
            f"builds the case format's layers with the network API; a whole {case.model.format} model goes "
            "through the ONNX parser's backend"
        )

    def load(self, case: Case) -> Runner:
        return TrtRunner(self.api(), self.build(case))

    def repro(self, case: Case) -> str | None:
        if case.model is not None:
            return None  # the model file is its own reproduction
        from plugins.tensorrt.repro import network_script

        return network_script(case, self.module_name, self.product, self.strongly_typed)


class TensorRTStronglyTypedBackend(TensorRTBackend):
    name = "tensorrt-strongly-typed"
    product = "NVIDIA TensorRT (network API, strongly typed network)"
    description = "the case as a strongly typed TensorRT network (10.x; the same as `tensorrt` on 11.x)"
    strongly_typed = True

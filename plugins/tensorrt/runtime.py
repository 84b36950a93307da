"""Running a serialized engine on a GPU with cuda-python: the only GPU code of the TensorRT backends.

`set_tensor_address` + `execute_async_v3` (present from 8.6.1 on). cuda-python 13 removed `from cuda import
cudart`; `cuda.bindings.runtime` is the same API. INT4 tensors are packed two per byte, first element in the low
nibble; FP8 and BF16 come back as their bit patterns.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from harness.cases.errors import QdqError

_NUMPY = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
    "FP8": ml_dtypes.float8_e4m3fn,
}


def cuda_runtime():
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # cuda-python 12.x
    return runtime


def gpu_status() -> tuple[bool, str]:
    """(usable, why not): the CUDA runtime, the driver and at least one device."""
    try:
        cudart = cuda_runtime()
    except ImportError as exc:
        return False, f"module missing: {exc.name} (pip install cuda-python)"
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0:
        _, text = cudart.cudaGetErrorString(err)
        return (
            False,
            f"no usable CUDA driver: {err.name if hasattr(err, 'name') else err} ({text.decode() if isinstance(text, bytes) else text})",
        )
    if not count:
        return False, "no GPU: cudaGetDeviceCount() is 0"
    return True, ""


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise QdqError("runtime-failed", f"CUDA error {err}", phase="run")
    return rest[0] if len(rest) == 1 else rest


def _pack_int4(a: np.ndarray) -> np.ndarray:
    from plugins.tensorrt.network import pack_nibbles

    return pack_nibbles(np.ascontiguousarray(a).view(np.uint8).reshape(-1))


def _unpack_int4(packed: np.ndarray, shape) -> np.ndarray:
    low, high = packed & 0x0F, packed >> 4
    both = np.stack([low, high], axis=-1).reshape(-1)[: int(np.prod(shape))].astype(np.int8)
    return np.where(both > 7, both - 16, both).astype(ml_dtypes.int4).reshape(shape)


class EngineRunner:
    """activate: deserialize + context + stream; infer: copy in, execute_async_v3, copy out; deactivate: free.
    `gpu_ms`: the engine's own execution time on the GPU (CUDA events around execute_async_v3, copies excluded)."""

    def __init__(self, trt, plan: bytes, logger):
        self.trt, self.plan, self.logger = trt, plan, logger
        self.engine = self.context = self.stream = None
        self.buffers: list = []
        self.gpu_ms: float | None = None

    def activate(self) -> None:
        cudart = cuda_runtime()
        runtime = self.trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(self.plan)
        if self.engine is None:
            # The runtime says why in its log (e.g. TensorRT-RTX on a GPU it does not support): keep its words.
            logged = [m for _, m in getattr(self.logger, "messages", [])]
            native = "\n".join(logged) or "deserialize_cuda_engine returned None"
            raise QdqError(
                "runtime-failed",
                f"deserialize_cuda_engine returned None: {native.splitlines()[0]}",
                native=native,
                phase="run",
            )
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())

    def layer_information(self) -> str | None:
        """The engine inspector's JSON: which precision each layer really runs in."""
        inspector = self.engine.create_engine_inspector()
        return inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, trt, engine = cuda_runtime(), self.trt, self.engine
        outputs = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            type_name = str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1]
            shape = tuple(self.context.get_tensor_shape(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                value = np.asarray(feeds[name])
                host = (
                    _pack_int4(value) if type_name == "INT4" else np.ascontiguousarray(value.astype(_NUMPY[type_name]))
                )
                device = _check(cudart.cudaMalloc(max(host.nbytes, 1)))
                _check(
                    cudart.cudaMemcpyAsync(
                        device, host.ctypes.data, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream
                    )
                )
            else:
                count = int(np.prod(shape))
                host = (
                    np.empty((count + 1) // 2, np.uint8)
                    if type_name in ("INT4", "FP4")
                    else np.empty(shape, _NUMPY[type_name])
                )
                device = _check(cudart.cudaMalloc(max(host.nbytes, 1)))
                outputs[name] = (host, device, type_name, shape)
            self.buffers.append(device)
            self.context.set_tensor_address(name, int(device))
        events = [_check(cudart.cudaEventCreate()), _check(cudart.cudaEventCreate())]
        try:
            _check(cudart.cudaEventRecord(events[0], self.stream))
            if not self.context.execute_async_v3(self.stream):
                raise QdqError("runtime-failed", "execute_async_v3 returned False", phase="run")
            _check(cudart.cudaEventRecord(events[1], self.stream))
            for host, device, _, _ in outputs.values():
                _check(
                    cudart.cudaMemcpyAsync(
                        host.ctypes.data, device, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream
                    )
                )
            _check(cudart.cudaStreamSynchronize(self.stream))
            self.gpu_ms = float(_check(cudart.cudaEventElapsedTime(events[0], events[1])))
        finally:
            for event in events:
                cudart.cudaEventDestroy(event)
        result = {}
        for name, (host, _, type_name, shape) in outputs.items():
            if type_name == "INT4":
                result[name] = _unpack_int4(host, shape)
            elif type_name == "FP4":
                codes = np.stack([host & 0x0F, host >> 4], axis=-1).reshape(-1)[: int(np.prod(shape))]
                result[name] = codes.astype(np.uint8).view(ml_dtypes.float4_e2m1fn).reshape(shape)
            else:
                result[name] = host
        return result

    def deactivate(self) -> None:
        cudart = cuda_runtime()
        for device in self.buffers:
            cudart.cudaFree(device)
        self.buffers = []
        if self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
        self.engine = self.context = self.stream = None

"""A case built as a TensorRT network and serialized engine, through `TrtApi` (shared by `tensorrt` and
`tensorrt-rtx`: the module is the only difference). Every builder message is captured, so a refused build is
reported with its category and NVIDIA's own words."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.cases.case import Case
from harness.cases.errors import QdqError
from harness.cases.errors import categorize as shared_categorize
from harness.cases.network import NetworkInfo
from plugins.tensorrt.compat import TrtApi

# Builder messages -> categories, first match wins (measured on TensorRT-RTX 1.7; 8.x texts from the cookbook).
_PATTERNS = [
    (r"ir_verifier|Error while verifying IR", "build-failed"),  # Myelin's own IR check: an internal failure
    (r"supported only on DLA", "unsupported-on-target"),  # UINT8/asymmetric: valid, but DLA-only
    (r"No matching rules found for input operand types", "unsupported-type"),  # Myelin type inference (F21, F22)
    (r"nbDims > 0|must not be a scalar", "scalar-input"),
    (r"quantization axis must index a dimension", "invalid-axis"),  # the ONNX parser's wording
    (r"must divide into whole blocks", "block-shape-invalid"),
    (r"Invalid rank for the scale tensor", "scale-shape-mismatch"),
    (r"requires identical rank for input and scale", "scale-shape-mismatch"),
    (r"has type \w+ but must have type", "unsupported-type"),
    (r"unexpected negative axis|[Aa]xis .*(out of|invalid|range)|invalid axis", "invalid-axis"),
    (r"zero_point` whose coefficients aren't all zeros|symmetric quantization|shiftIsAllZeros", "zero-point-nonzero"),
    (r"[Zz]ero.?[Pp]oint.*(shape|dimension|same)", "zero-point-shape-mismatch"),
    (
        r"Cannot compile for target|HW-specific datatypes|not supported on (this|the) (target|platform|device)",
        "unsupported-on-target",
    ),
    (r"[Ss]cale.*(positive|> ?0)", "scale-not-positive"),
    (r"ScaleMode is illegal|scale.*(size|shape|dimension|count)|number of scales", "scale-shape-mismatch"),
    (r"[Bb]lock size|[Bb]locking dimension|[Bb]lock", "block-shape-invalid"),
    (r"build-time constant|must be a constant", "scale-not-constant"),
    (r"scalar", "scalar-input"),
    (
        r"[Ss]ub-byte .*odd|odd (tensor volume|last dimension)|4-bit quantization requi\w* an even number",
        "sub-byte-odd-count",
    ),
    (r"[Vv]olume|too many elements|exceeds.*2\^31|INT32_MAX", "volume-limit"),
    (r"[Dd]ata ?[Tt]ype|type .*not supported|unsupported.*type|[Ii]nvalid.*type", "unsupported-type"),
]


def categorize(text: str) -> str:
    return shared_categorize(text, _PATTERNS, "build-failed")


_LOGGERS: dict[int, object] = {}


def make_logger(trt):
    """The process's ILogger for this TensorRT module, emptied: it keeps every message (severity, text) of one
    build. One per process, never collected: TensorRT calls it from builders and runtimes that may outlive a build,
    and a logger made per build deadlocked TensorRT-RTX 1.7 (a new Builder's first log call blocked after a
    dozen builds refused in add_input; measured with cases/onnx-node, both files in one worker)."""
    logger = _LOGGERS.get(id(trt))
    if logger is None:

        class CaptureLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.messages: list[tuple[str, str]] = []

            def log(self, severity, msg):
                self.messages.append((str(severity).rsplit(".", 1)[-1], msg))

            def errors(self) -> list[str]:
                return [m for s, m in self.messages if s in ("ERROR", "INTERNAL_ERROR")]

        logger = _LOGGERS[id(trt)] = CaptureLogger()
    logger.messages = []
    return logger


def _refusal(logger, fallback: str) -> QdqError:
    errors = logger.errors() or [fallback]
    native = "\n".join(errors)
    return QdqError(categorize(native), errors[0].splitlines()[0], native=native)


@dataclass
class Built:
    plan: bytes
    typing: str
    messages: list[tuple[str, str]]
    engine_cache: str = "off"  # "hit": read from the engine cache; "miss": built and stored; "off": not cached


def _constant_weights(api: TrtApi, value: np.ndarray, type_name: str):
    """(bytes to keep alive, trt.Weights, type to cast to afterwards). numpy's own types go as they are; BF16 goes
    as FP32 and is cast (numpy has no BF16 for TensorRT's array constructor); FP8 as its bytes and INT4/FP4 packed
    two per byte, first element in the low nibble (TensorRT's documented layout for 4-bit weights), both through
    the typed `Weights(type, ptr, count)` constructor. A type TensorRT lacks is refused as unsupported."""
    trt = api.trt
    if type_name in ("float32", "float16", "int32", "int64", "int8", "uint8"):
        data = np.ascontiguousarray(value)
        return data, trt.Weights(data), None
    if type_name == "bfloat16":
        data = np.ascontiguousarray(value.astype(np.float32))
        return data, trt.Weights(data), "bfloat16"
    trt_type = api.dtype(type_name)  # raises unsupported-type where this TensorRT has no such DataType
    if type_name == "fp8":
        data = np.ascontiguousarray(value).view(np.uint8).copy()
    elif type_name in ("int4", "fp4"):
        data = pack_nibbles(np.ascontiguousarray(value).view(np.uint8).ravel())
    else:
        raise QdqError("unsupported-type", f"a {type_name} constant cannot be given to TensorRT as weights")
    return data, trt.Weights(trt_type, data.ctypes.data, int(value.size)), None


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """4-bit codes (one per byte, in the low nibble) packed two per byte, first element in the low nibble."""
    codes = codes & 0x0F
    if codes.size % 2:
        codes = np.append(codes, np.uint8(0))
    return (codes[0::2] | (codes[1::2] << 4)).astype(np.uint8)


def _compute_layer(trt, network, layer, tensors: dict, info: NetworkInfo):
    """conv, matmul, add, relu, pool, concat with INetworkDefinition's own layers. A convolution's kernel (and bias)
    come as tensors through set_input (the kernel of a Q/DQ network is a DequantizeLayer's output, which is how
    TensorRT recognises a quantized convolution); padding is explicit pre/post padding."""
    from harness.cases.shapes import window

    if layer.op == "conv":
        w_shape = info.shapes[layer.weight]
        win = window(layer, tuple(w_shape[2:]))
        made = network.add_convolution_nd(
            tensors[layer.input], w_shape[0], trt.Dims(w_shape[2:]), trt.Weights(), trt.Weights()
        )
        made.set_input(1, tensors[layer.weight])
        if layer.bias is not None:
            made.set_input(2, tensors[layer.bias])
        made.num_groups = layer.attr("groups", 1)
    elif layer.op == "pool":
        kind = trt.PoolingType.MAX if layer.attr("kind") == "max" else trt.PoolingType.AVERAGE
        win = window(layer, tuple(layer.attr("kernel")))
        made = network.add_pooling_nd(tensors[layer.input], kind, trt.Dims(win["kernel"]))
        if kind == trt.PoolingType.AVERAGE:
            made.average_count_excludes_padding = True
    elif layer.op == "matmul":
        none = trt.MatrixOperation.NONE
        a, b = _same_rank(trt, network, tensors, info, layer.inputs)
        return network.add_matrix_multiply(a, none, b, none)
    elif layer.op == "add":
        a, b = _same_rank(trt, network, tensors, info, layer.inputs)
        return network.add_elementwise(a, b, trt.ElementWiseOperation.SUM)
    elif layer.op == "relu":
        return network.add_activation(tensors[layer.input], trt.ActivationType.RELU)
    else:  # concat
        made = network.add_concatenation([tensors[name] for name in layer.inputs])
        made.axis = layer.axis if layer.axis is not None else 1
        return made
    t, l, b, r = win["pads"]
    made.stride_nd = trt.Dims(win["stride"])
    made.pre_padding = trt.Dims((t, l))
    made.post_padding = trt.Dims((b, r))
    if layer.op == "conv":
        made.dilation_nd = trt.Dims(win["dilation"])
    return made


def _same_rank(trt, network, tensors: dict, info: NetworkInfo, names) -> list:
    """The operands at one rank: TensorRT's matrix multiply and elementwise layers take operands of equal rank and
    broadcast dimensions of size 1, where ONNX's MatMul and Add (numpy broadcasting) first prepend 1s to the shorter
    shape. A [1, 8, 16] x [16, 16] MatMul is built as [1, 8, 16] x [1, 16, 16] (a shuffle's reshape)."""
    rank = max(len(info.shapes[name]) for name in names)
    out = []
    for name in names:
        shape = tuple(info.shapes[name])
        if len(shape) == rank:
            out.append(tensors[name])
            continue
        shuffle = network.add_shuffle(tensors[name])
        shuffle.reshape_dims = trt.Dims((1,) * (rank - len(shape)) + shape)
        shuffle.name = f"{name}_rank{rank}"
        out.append(shuffle.get_output(0))
    return out


def build_network(api: TrtApi, case: Case, logger):
    """(builder, network, keep-alive arrays). Raises QdqError when a layer cannot even be added."""
    if case.model is not None:
        raise QdqError("build-failed", f"{case.id} is a whole {case.model.format} model: no layers to add")
    trt = api.trt
    info = NetworkInfo(case)
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags())
    tensors, keep = {}, []
    for layer in case.network:
        try:
            if layer.op == "input":
                tensors[layer.name] = network.add_input(layer.name, api.dtype(layer.output_type), tuple(layer.shape))
                continue
            if layer.op == "constant":
                data, weights, cast_to = _constant_weights(api, info.constant_value(layer.name), layer.output_type)
                keep.append(data)  # TensorRT reads weights at build time, not when they are added
                made = network.add_constant(tuple(info.shapes[layer.name]), weights)
                if cast_to:
                    made.name = f"{layer.name}__weights"
                    made = network.add_cast(made.get_output(0), api.dtype(cast_to))
            elif layer.op == "cast":
                made = network.add_cast(tensors[layer.input], api.dtype(layer.output_type))
            elif layer.compute:
                made = _compute_layer(trt, network, layer, tensors, info)
            elif layer.op == "quantize":
                made = api.add_quantize(network, tensors[layer.input], tensors[layer.scale], layer.output_type)
            else:
                made = api.add_dequantize(network, tensors[layer.input], tensors[layer.scale], layer.output_type)
            if made is None:
                raise _refusal(logger, f"adding {layer.op} {layer.name!r} returned None")
            if layer.op in ("quantize", "dequantize"):
                if layer.axis is not None:
                    made.axis = layer.axis
                if layer.zero_point is not None:
                    made.set_input(2, tensors[layer.zero_point])
            made.name = layer.name
            made.get_output(0).name = layer.name
            tensors[layer.name] = made.get_output(0)
        except QdqError:
            raise
        except (TypeError, ValueError, RuntimeError) as exc:
            messages = "\n".join(logger.errors())
            raise QdqError(
                categorize(f"{messages}\n{exc}"),
                f"{layer.op} {layer.name!r}: {exc}".splitlines()[0],
                native=f"{messages}\n{exc}".strip(),
            ) from None
    for name in case.outputs:
        network.mark_output(tensors[name])
    return builder, network, keep


def build_engine(
    api: TrtApi,
    case: Case,
    target: str | None = None,
    onnx_model: bytes | None = None,
    timing_cache: Path | None = None,
    inspect_network=None,
) -> Built:
    """Build and serialize, from the case's layers or (`onnx_model`) through TensorRT's OnnxParser; raises QdqError
    with the captured builder or parser errors when refused."""
    trt = api.trt
    logger = make_logger(trt)
    if onnx_model is None:
        builder, network, keep = build_network(api, case, logger)
    else:
        builder, network, keep = _parse_onnx(api, onnx_model, logger)
    if inspect_network is not None:
        inspect_network(network)  # e.g. how the parser read the model (before the builder optimises it)
    config = builder.create_builder_config()
    if hasattr(trt, "ProfilingVerbosity"):
        # Keep each layer's precision in the plan for the engine inspector (did it run quantized?); no effect on
        # the tactics chosen.
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    info = NetworkInfo(case)
    for flag in api.precision_flags({info.dtype(layer.name) for layer in case.network}):
        config.set_flag(flag)
    if target and hasattr(trt, "ComputeCapability"):
        # Ahead-of-time targets exist in TensorRT-RTX; TensorRT builds for the GPU it runs on and ignores them.
        capability = getattr(trt.ComputeCapability, target, None)
        if capability is None:
            raise QdqError("unsupported-on-target", f"{trt.__name__} {api.version} has no target {target}")
        config.num_compute_capabilities = 1
        config.set_compute_capability(capability, 0)
    cache = None
    if timing_cache is not None and hasattr(trt.IBuilderConfig, "create_timing_cache"):
        # One timing cache shared by every build (tactic timings are per GPU and TensorRT version: the caller keys it)
        cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
        config.set_timing_cache(cache, False)
    plan = builder.build_serialized_network(network, config)
    if cache is not None and plan is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = timing_cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(bytes(cache.serialize()))
        os.replace(tmp, timing_cache)
    del keep
    if plan is None:
        raise _refusal(logger, "build_serialized_network returned None")
    return Built(bytes(plan), api.typing, list(logger.messages))


def _parse_onnx(api: TrtApi, model: bytes, logger):
    trt = api.trt
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags())
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        native = "\n".join(errors + logger.errors()) or "OnnxParser.parse returned False"
        raise QdqError(categorize(native), native.splitlines()[0], native=native)
    return builder, network, [parser]

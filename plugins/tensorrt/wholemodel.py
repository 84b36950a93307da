"""A whole ONNX model through TensorRT-RTX's parser and builder on a CPU (`qdq import --whole`): whether NVIDIA's
builder takes it, and which compute layers of the engine run on quantized inputs (its builder log)."""

from __future__ import annotations


def build_onnx_model(model_bytes: bytes) -> dict:
    try:
        import tensorrt_rtx
    except ImportError:
        return {"status": "not run", "reason": "module missing: tensorrt_rtx (pip install 'qdq-harness[rtx]')"}
    from harness.cases.errors import QdqError
    from plugins.tensorrt.buildlog import precision_details
    from plugins.tensorrt.compat import TrtApi
    from plugins.tensorrt.network import _parse_onnx, _refusal, make_logger

    api = TrtApi(tensorrt_rtx, strongly_typed=True)
    trt = api.trt
    logger = make_logger(trt)
    try:
        builder, network, keep = _parse_onnx(api, model_bytes, logger)
        config = builder.create_builder_config()
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        plan = builder.build_serialized_network(network, config)
        del keep
        if plan is None:
            raise _refusal(logger, "build_serialized_network returned None")
    except QdqError as exc:
        return {"status": "refused", "category": exc.category, "reason": exc.native.splitlines()[0][:500]}
    details = precision_details(logger.messages)
    return {
        "status": "built",
        "version": tensorrt_rtx.__version__,
        "plan_bytes": int(plan.nbytes),
        "layer_types": details.get("layer_types", {}),
        "engine_layers": details.get("engine_layers", []),
    }

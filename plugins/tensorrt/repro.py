"""The TensorRT backends' repro scripts: the network API as the documents write it (8.6 to 11.x, TensorRT-RTX),
and for the ONNX parser path the model, its inputs, and `trtexec` and `polygraphy run` command lines."""

from __future__ import annotations

import numpy as np

from plugins.tensorrt.network import pack_nibbles

from harness.cases.case import Case
from harness.cases.network import NetworkInfo
from harness.engine.scripts import FOOTER, array_code, finish, header, inputs_code
from plugins.onnx.repro import model_code

DISTRIBUTIONS = {"cuda": "cuda-python", "tensorrt_rtx": "tensorrt-rtx"}  # module -> the package that installs it


_TRT_TYPES = {
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "fp8": "fp8",
    "int4": "int4",
    "fp4": "fp4",
}

_TRT_HELPERS = """
def dtype(name):
    return getattr(trt, name)


def add_quantize(network, x, scale, to):
    if hasattr(trt.IQuantizeLayer, "to_type"):  # TensorRT 10.0+: the output type is an argument (required in 11.x)
        return network.add_quantize(x, scale, dtype(to))
    return network.add_quantize(x, scale)  # 8.x: INT8 only


def add_dequantize(network, q, scale, to):
    if hasattr(trt.IQuantizeLayer, "to_type"):
        return network.add_dequantize(q, scale, dtype(to))
    return network.add_dequantize(q, scale)


def network_flags():
    creation = trt.NetworkDefinitionCreationFlag
    if not hasattr(trt.IQuantizeLayer, "to_type") and hasattr(creation, "EXPLICIT_BATCH"):
        return 1 << int(creation.EXPLICIT_BATCH)  # 8.x
    return 0


def weak_typing_flags(config, names):
    for name in names:  # precision flags exist up to 10.x; 11.x is always strongly typed
        if hasattr(trt.BuilderFlag, name):
            config.set_flag(getattr(trt.BuilderFlag, name))
"""

_TRT_RUN = '''
def run(plan):
    """Deserialize and run on the GPU (cuda-python); prints why not when there is none."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or not count:
        print(f"engine built ({len(plan)} bytes); no GPU to run it ({err})")
        return {}
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    _, stream = cudart.cudaStreamCreate()
    outputs, buffers = {}, []
    numpy_of = {"FLOAT": np.float32, "HALF": np.float16, "BF16": ml_dtypes.bfloat16, "INT8": np.int8,
                "INT32": np.int32, "FP8": ml_dtypes.float8_e4m3fn}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        kind = str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1]
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            host = np.ascontiguousarray(INPUTS[name].astype(numpy_of[kind]))
            _, device = cudart.cudaMalloc(max(host.nbytes, 1))
            cudart.cudaMemcpyAsync(device, host.ctypes.data, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)
        else:
            host = np.empty(tuple(context.get_tensor_shape(name)), numpy_of[kind])  # INT4/FP4 outputs are packed: not here
            _, device = cudart.cudaMalloc(max(host.nbytes, 1))
            outputs[name] = (host, device)
        buffers.append(device)
        context.set_tensor_address(name, int(device))
    context.execute_async_v3(stream)
    for host, device in outputs.values():
        cudart.cudaMemcpyAsync(host.ctypes.data, device, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)
    cudart.cudaStreamSynchronize(stream)
    for device in buffers:
        cudart.cudaFree(device)
    return {name: host for name, (host, _) in outputs.items()}
'''


def _compute_code(layer, info) -> list[str]:
    """The script's lines for a compute layer, as plugins/tensorrt/network.py builds it."""
    from harness.cases.shapes import window

    op, _n = layer.op, layer.name
    lines: list[str] = []
    if op in ("matmul", "add"):
        # Equal ranks, as network.py's _same_rank makes them: 1s prepended to the shorter shape (ONNX broadcasting).
        rank = max(len(info.shapes[name]) for name in layer.inputs)
        operands = []
        for name in layer.inputs:
            shape = list(info.shapes[name])
            if len(shape) == rank:
                operands.append(f"t[{name!r}]")
                continue
            lines += [
                f"    shuffle = network.add_shuffle(t[{name!r}])",
                f"    shuffle.reshape_dims = trt.Dims({[1] * (rank - len(shape)) + shape!r})",
            ]
            operands.append(f"ranked_{len(operands)}")
            lines.append(f"    {operands[-1]} = shuffle.get_output(0)")
        a, b = operands
    if op == "matmul":
        return lines + [
            f"    layer = network.add_matrix_multiply({a}, trt.MatrixOperation.NONE, {b}, trt.MatrixOperation.NONE)"
        ]
    if op == "add":
        return lines + [f"    layer = network.add_elementwise({a}, {b}, trt.ElementWiseOperation.SUM)"]
    if op == "relu":
        return [f"    layer = network.add_activation(t[{layer.input!r}], trt.ActivationType.RELU)"]
    if op == "concat":
        return [
            f"    layer = network.add_concatenation([{', '.join(f't[{i!r}]' for i in layer.inputs)}])",
            f"    layer.axis = {layer.axis if layer.axis is not None else 1}",
        ]
    if op == "conv":
        w = info.shapes[layer.weight]
        win = window(layer, tuple(w[2:]))
        lines = [
            f"    layer = network.add_convolution_nd(t[{layer.input!r}], {w[0]}, trt.Dims({list(w[2:])!r}), "
            "trt.Weights(), trt.Weights())",
            f"    layer.set_input(1, t[{layer.weight!r}])  # the kernel: a Dequantize output",
            f"    layer.num_groups = {layer.attr('groups', 1)}",
            f"    layer.dilation_nd = trt.Dims({list(win['dilation'])!r})",
        ]
        if layer.bias is not None:
            lines.insert(2, f"    layer.set_input(2, t[{layer.bias!r}])")
    else:  # pool
        kind = "MAX" if layer.attr("kind") == "max" else "AVERAGE"
        win = window(layer, tuple(layer.attr("kernel")))
        lines = [
            f"    layer = network.add_pooling_nd(t[{layer.input!r}], trt.PoolingType.{kind}, "
            f"trt.Dims({list(win['kernel'])!r}))"
        ]
        if kind == "AVERAGE":
            lines.append("    layer.average_count_excludes_padding = True")
    t_, l_, b_, r_ = win["pads"]
    return lines + [
        f"    layer.stride_nd = trt.Dims({list(win['stride'])!r})",
        f"    layer.pre_padding = trt.Dims({[t_, l_]!r})",
        f"    layer.post_padding = trt.Dims({[b_, r_]!r})",
    ]


def network_script(case: Case, module: str, product: str, strongly_typed: bool = False) -> str:
    info = NetworkInfo(case)
    body = [
        header(case, product),
        f"import {module} as trt",
        "",
        inputs_code(case),
        _TRT_HELPERS,
        "",
        "def build():",
        "    logger = trt.Logger(trt.Logger.WARNING)",
        "    builder = trt.Builder(logger)",
    ]
    if strongly_typed:
        body.append("    flags = network_flags() | (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))")
    else:
        body.append("    flags = network_flags()")
    body += ["    network = builder.create_network(flags)", "    t, keep = {}, []"]
    for layer in case.network:
        n = layer.name
        if layer.op == "input":
            body.append(
                f"    t[{n!r}] = network.add_input({n!r}, dtype({_TRT_TYPES[layer.output_type]!r}), {tuple(layer.shape)!r})"
            )
            continue
        if layer.op == "constant":
            value = info.constant_value(n)
            cast = None
            if layer.output_type == "bfloat16":
                value, cast = value.astype(np.float32), "bfloat16"
            if layer.output_type in ("fp8", "int4", "fp4"):
                # Typed weights: FP8 as its bytes, INT4/FP4 packed two per byte, first element in the low nibble.
                codes = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
                data = codes if layer.output_type == "fp8" else pack_nibbles(codes)
                body.append(f"    keep.append({array_code(data)})  # {layer.output_type} codes")
                body.append(
                    f"    layer = network.add_constant({tuple(info.shapes[n])!r}, trt.Weights("
                    f"dtype({layer.output_type!r}), keep[-1].ctypes.data, {int(value.size)}))"
                )
            else:
                body.append(f"    keep.append({array_code(value)}.reshape({list(info.shapes[n])}))")
                body.append(f"    layer = network.add_constant({tuple(info.shapes[n])!r}, trt.Weights(keep[-1]))")
            if cast:
                body.append(f"    layer = network.add_cast(layer.get_output(0), dtype({cast!r}))")
        elif layer.op == "cast":
            body.append(f"    layer = network.add_cast(t[{layer.input!r}], dtype({_TRT_TYPES[layer.output_type]!r}))")
        elif layer.compute:
            body += _compute_code(layer, info)
        else:
            fn = "add_quantize" if layer.op == "quantize" else "add_dequantize"
            body.append(
                f"    layer = {fn}(network, t[{layer.input!r}], t[{layer.scale!r}], {_TRT_TYPES[layer.output_type]!r})"
            )
            if layer.axis is not None:
                body.append(f"    layer.axis = {layer.axis}")
            if layer.zero_point is not None:
                body.append(f"    layer.set_input(2, t[{layer.zero_point!r}])  # the zero point")
        body += [
            f"    layer.name = {n!r}",
            f"    layer.get_output(0).name = {n!r}",
            f"    t[{n!r}] = layer.get_output(0)",
        ]
    for name in case.outputs:
        body.append(f"    network.mark_output(t[{name!r}])")
    types = sorted({info.dtype(l.name) for l in case.network})
    flags = sorted(
        {"INT8"}
        | {
            f
            for t, f in (("fp8", "FP8"), ("int4", "INT4"), ("fp4", "FP4"), ("float16", "FP16"), ("bfloat16", "BF16"))
            if t in types
        }
    )
    body += ["    config = builder.create_builder_config()"]
    if not strongly_typed:
        body.append(f"    weak_typing_flags(config, {flags!r})")
    target = case.target.get("compute_capability")
    if target:
        body += [
            "    config.num_compute_capabilities = 1",
            f"    config.set_compute_capability(trt.ComputeCapability.{target}, 0)",
        ]
    body += [
        "    plan = builder.build_serialized_network(network, config)",
        "    if plan is None:",
        "        raise SystemExit('build_serialized_network returned None (see the errors above)')",
        "    print(f'build_serialized_network: {plan.nbytes} bytes')",
        "    return bytes(plan)",
        "",
        _TRT_RUN,
        "",
        "",
        "def run_case():",
        "    return run(build())",
    ]
    return finish("\n".join(body) + "\n" + FOOTER.replace("outputs = run()", "outputs = run_case()"), DISTRIBUTIONS)


def _data_loader(case: Case) -> str:
    """Polygraphy's --data-loader-script: yields the case's inputs from the .npy files beside it."""
    return (
        "import pathlib\n\nimport numpy as np\n\n\ndef load_data():\n    folder = pathlib.Path(__file__).parent\n"
        f"    yield {{name: np.load(folder / (name + '.npy'), allow_pickle=False) for name in {list(case.inputs)!r}}}\n"
    )


def onnx_parser_script(case: Case, opset: int) -> str:
    return finish(
        "\n".join(
            [
                header(case, "TensorRT's ONNX parser"),
                "import pathlib",
                "",
                model_code(case, opset),
                "",
                inputs_code(case),
                "",
                "if __name__ == '__main__':",
                "    folder = pathlib.Path(__file__).with_suffix('')",
                "    folder.mkdir(exist_ok=True)",
                "    (folder / 'model.onnx').write_bytes(build_model().SerializeToString())",
                "    for name, value in INPUTS.items():",
                "        np.save(folder / f'{name}.npy', value, allow_pickle=False)",
                "        value.tofile(folder / f'{name}.bin')  # trtexec --loadInputs reads raw binary",
                f"    (folder / 'data_loader.py').write_text({_data_loader(case)!r})",
                "    print('wrote', folder / 'model.onnx', 'and its inputs')",
                "    print('cd', folder, '&& trtexec --onnx=model.onnx --stronglyTyped"
                + (" --loadInputs=" + ",".join(f"{n}:{n}.bin" for n in case.inputs) if case.inputs else "")
                + " --dumpOutput')",
                "    print('cd', folder, '&& polygraphy run model.onnx --trt --onnxrt --strongly-typed"
                f" --data-loader-script data_loader.py --check-error-stat elemwise {polygraphy_tolerance(case)}')",
            ]
        )
        + "\n"
    )


def polygraphy_tolerance(case: Case) -> str:
    """`--atol/--rtol` for Polygraphy's element-wise check (its default `elemwise` statistic: any element outside
    the tolerance fails; `median` would pass a one-element difference). Steps become an absolute tolerance of
    that many steps of the output's largest scale."""
    expect = case.expect
    tol = expect.tolerance
    if tol.kind == "close":
        return f"--atol {tol.atol!r} --rtol {tol.rtol!r}"
    if tol.kind == "steps":
        info = NetworkInfo(case)
        steps = [info.step(name) for name in case.outputs]
        largest = max((float(np.max(s)) for s in steps if s is not None and np.size(s)), default=0.0)
        return f"--atol {tol.steps * largest!r} --rtol 0"
    return "--atol 0 --rtol 0"

"""The ONNX backends' repro scripts: the exported model written out as `onnx.helper` calls, run by ONNX Runtime or
the reference evaluator."""

from __future__ import annotations

from harness.cases.case import Case
from harness.cases.network import NetworkInfo
from harness.engine.scripts import FOOTER, array_code, finish, header, inputs_code


def model_code(case: Case, opset: int | None) -> str:
    from onnx import helper, numpy_helper

    from plugins.onnx.export import export

    exported = export(case, opset)
    graph = exported.model.graph
    lines = ["from onnx import TensorProto, helper, numpy_helper", "", "", "def build_model():", "    nodes = ["]
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kw = "".join(f", {k}={v!r}" for k, v in attrs.items())
        lines.append(
            f"        helper.make_node({node.op_type!r}, {list(node.input)!r}, {list(node.output)!r}, "
            f"name={node.name!r}{kw}),"
        )
    lines.append("    ]")
    lines.append("    initializers = [")
    for init in graph.initializer:
        lines.append(
            f"        numpy_helper.from_array({array_code(numpy_helper.to_array(init))}"
            f".reshape({list(init.dims)}), {init.name!r}),"
        )
    lines.append("    ]")

    def vi(v):
        t = v.type.tensor_type
        return f"helper.make_tensor_value_info({v.name!r}, {t.elem_type}, {[d.dim_value for d in t.shape.dim]!r})"

    lines.append(f"    inputs = [{', '.join(vi(v) for v in graph.input)}]")
    lines.append(f"    outputs = [{', '.join(vi(v) for v in graph.output)}]")
    lines.append(f"    graph = helper.make_graph(nodes, {graph.name!r}, inputs, outputs, initializer=initializers)")
    lines.append(f"    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', {exported.opset})])")
    lines.append(f"    model.ir_version = {exported.model.ir_version}")
    lines.append("    return model")
    return "\n".join(lines) + "\n"


def onnxruntime_script(case: Case, opset: int) -> str:
    info = NetworkInfo(case)
    types = {name: info.dtype(name) for name in case.outputs}
    return finish(
        "\n".join(
            [
                header(case, "ONNX Runtime (CPUExecutionProvider)"),
                model_code(case, opset),
                "",
                inputs_code(case),
                "",
                f"OUTPUT_TYPES = {types!r}  # INT4 cannot be fetched from ORT's Python API: read it through a DQ(scale 1)",
                "",
                "def run():",
                "    import onnxruntime as ort",
                "    model = build_model()",
                "    extra = []",
                "    for name, t in OUTPUT_TYPES.items():",
                "        if t in ('int4', 'fp4'):",
                "            one = numpy_helper.from_array(np.array(1.0, np.float32), name + '__one')",
                "            model.graph.initializer.append(one)",
                "            model.graph.node.append(helper.make_node('DequantizeLinear', [name, one.name], [name + '__readout']))",
                "            model.graph.output.append(helper.make_tensor_value_info(name + '__readout', TensorProto.FLOAT, None))",
                "            extra.append(name)",
                "    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])",
                "    fetch = [n + '__readout' if n in extra else n for n in OUTPUT_TYPES]",
                "    onnx_types = {'float8_e4m3fn': TensorProto.FLOAT8E4M3FN, 'bfloat16': TensorProto.BFLOAT16}",
                "    feeds = {n: v if v.dtype.type.__module__ == 'numpy' else ort.OrtValue.ortvalue_from_numpy_with_onnx_type(",
                "        v.view(f'u{v.dtype.itemsize}'), onnx_types[v.dtype.name]) for n, v in INPUTS.items()}  # FP8/BF16 inputs",
                "    values = session.run(fetch, feeds)",
                "    out = {}",
                "    for name, value in zip(OUTPUT_TYPES, values):",
                "        if OUTPUT_TYPES[name] == 'fp8':",
                "            value = np.asarray(value).view(ml_dtypes.float8_e4m3fn)  # ORT returns FP8 as raw bytes",
                "        out[name] = value",
                "    return out",
            ]
        )
        + "\n"
        + FOOTER
    )


def reference_script(case: Case, opset: int) -> str:
    return finish(
        "\n".join(
            [
                header(case, "onnx.reference.ReferenceEvaluator"),
                model_code(case, opset),
                "",
                inputs_code(case),
                "",
                "def run():",
                "    from onnx.reference import ReferenceEvaluator",
                "    model = build_model()",
                "    names = [o.name for o in model.graph.output]",
                "    return dict(zip(names, ReferenceEvaluator(model).run(names, INPUTS)))",
            ]
        )
        + "\n"
        + FOOTER
    )

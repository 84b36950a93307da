"""The compute layers of a quantized ONNX model as cases: each Conv, Gemm, MatMul, Add, Concat or pooling node whose
inputs come through Dequantize nodes, with those Q/DQ nodes, the model's own weights (whole, never cut), its bias
and the Quantize after it. Each Q/DQ node is owned by the first case that contains it (`claim`), so the importer can
account for every node of the model.

A constant DequantizeLinear of a bias (INT32 codes, as ONNX Runtime's quantizer writes it) is written as the float
bias it dequantizes to, computed as DequantizeLinear defines it ((codes - zero point) * scale in float32): TensorRT's
parser folds such a constant the same way, and the value is the model's, to the bit.
"""

from __future__ import annotations

import numpy as np

COMPUTE_OPS = ("Conv", "Gemm", "MatMul", "Add", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool")


class Graph:
    """The lookups every pattern needs, made once per model."""

    def __init__(self, model, infos: dict):
        from onnx import helper, numpy_helper

        self.model, self.infos = model, infos
        self.helper, self.numpy_helper = helper, numpy_helper
        self.inits = {i.name: i for i in model.graph.initializer}
        self.producers = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def attrs(self, node) -> dict:
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    def array(self, name: str) -> np.ndarray:
        return self.numpy_helper.to_array(self.inits[name])

    def const(self, name: str) -> bool:
        return name in self.inits

    def elem(self, name: str) -> int | None:
        if name in self.inits:
            return self.inits[name].data_type
        found = self.infos.get(name)
        return found[0] if found else None

    def shape(self, name: str) -> list[int] | None:
        if name in self.inits:
            return list(self.inits[name].dims)
        found = self.infos.get(name)
        return found[1] if found else None


def node_id(node, index: int | None = None) -> str:
    return node.name or node.output[0]


class Island:
    """One case under construction: its network, inputs and the Q/DQ nodes it contains."""

    def __init__(self, graph: Graph, files, tag: str, case_type):
        self.g, self.files, self.tag, self.case_type = graph, files, tag, case_type
        self.network: list[dict] = []
        self.inputs: dict = {}
        self.nodes: list = []  # the Q/DQ nodes written into this case
        self.names: dict[str, str] = {}  # model tensor -> case tensor
        self.seed = 0
        self.max_scale = 1.0
        self.fed: dict[str, str] = {}  # case input -> the model tensor it stands for
        self.scales: list[np.ndarray] = []
        self.zero_point_of: dict[str, np.ndarray] = {}  # Q/DQ layer name -> its zero point
        self.unexpressible: str = ""  # why a Q/DQ node of this island cannot be written as the model means it

    def _fresh(self, stem: str) -> str:
        base = "".join(c if c.isalnum() else "_" for c in stem)[:24] or "t"
        name, i = base, 1
        taken = {layer["name"] for layer in self.network}
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        return name

    def constant(self, stem: str, array: np.ndarray, dtype: str) -> str:
        name = self._fresh(stem)
        value = self.files.value(f"{self.tag}-{name}", array)
        self.network.append(
            {"op": "constant", "name": name, "dtype": dtype, "shape": list(array.shape), "value": value}
        )
        return name

    def qdq_layer(self, node, source: str) -> str:
        """A QuantizeLinear/DequantizeLinear node with constant scale (and zero point) as the case's layer."""
        g = self.g
        attrs = g.attrs(node)
        scale = g.array(node.input[1])
        self.scales.append(scale)
        if "block_size" in attrs:  # the case format implies the block from the scale's shape: it must be the same
            x_shape = g.shape(node.input[0]) or []
            axis = int(attrs.get("axis", 1)) % max(len(x_shape), 1)
            blocked = [d for d in range(len(x_shape)) if scale.ndim == len(x_shape) and scale.shape[d] != x_shape[d]]
            if blocked != [axis] or -(-x_shape[axis] // scale.shape[axis]) != int(attrs["block_size"]):
                self.unexpressible = (
                    f"block_size {attrs['block_size']} on axis {axis} is not what the scale's shape "
                    f"{list(scale.shape)} implies for {x_shape}"
                )
        stype = self.case_type(g.elem(node.input[1]))
        s = self.constant(f"{node_id(node)}_s", scale, stype)
        layer = {"op": "quantize" if node.op_type == "QuantizeLinear" else "dequantize", "name": "", "input": source}
        layer["scale"] = s
        zp = g.array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is not None:
            layer["zero_point"] = self.constant(f"{node_id(node)}_zp", zp, self.case_type(g.elem(node.input[2])))
        if scale.ndim >= 1 and scale.size > 1 and scale.ndim == 1:
            layer["axis"] = int(attrs.get("axis", 1))
        if node.op_type == "QuantizeLinear":
            zp_type = self.case_type(g.elem(node.input[2])) if len(node.input) > 2 and node.input[2] else None
            layer["to"] = zp_type or self.case_type(attrs.get("output_dtype", 0)) or "uint8"
        else:
            layer["to"] = stype
        layer["name"] = self._fresh(node_id(node))
        if zp is not None:
            self.zero_point_of[layer["name"]] = zp
        self.network.append(layer)
        self.nodes.append(node)
        self.max_scale = max(self.max_scale if self.nodes[:-1] else 0.0, float(np.max(np.abs(scale))) or 1.0)
        return layer["name"]

    def feed(self, tensor: str) -> str | None:
        """A float activation of the model as a case input (batch and symbolic dimensions 1)."""
        shape = self.g.shape(tensor)
        real = self.case_type(self.g.elem(tensor))
        if shape is None or real is None:
            return None
        name = self._fresh(tensor)
        self.network.insert(0, {"op": "input", "name": name, "dtype": real, "shape": shape})
        self.inputs[name] = None  # filled when the scale that shapes its distribution is known
        self.fed[name] = tensor
        return name

    def operand(self, tensor: str) -> str | None:
        """A compute node's input as the case's tensor: through its DQ (and the Q before it), a constant, or a plain
        float activation; None when it cannot be stated (a runtime scale, an unknown shape)."""
        if tensor in self.names:
            return self.names[tensor]
        g = self.g
        producer = g.producers.get(tensor)
        if producer is not None and producer.op_type == "DequantizeLinear" and g.const(producer.input[1]):
            src = producer.input[0]
            if g.const(src):  # stored codes
                codes = self.constant(f"{src}", g.array(src), self.case_type(g.elem(src)))
                out = self.qdq_layer(producer, codes)
            else:
                q = g.producers.get(src)
                if q is None or q.op_type != "QuantizeLinear" or not g.const(q.input[1]):
                    return None
                if g.const(q.input[0]):  # a float weight quantized in the graph
                    x = self.constant(q.input[0], g.array(q.input[0]), self.case_type(g.elem(q.input[0])))
                else:
                    x = self.feed(q.input[0])
                    if x is None:
                        return None
                out = self.qdq_layer(producer, self.qdq_layer(q, x))
        elif g.const(tensor):
            out = self.constant(tensor, g.array(tensor), self.case_type(g.elem(tensor)))
        else:
            out = self.feed(tensor)
        if out is not None:
            self.names[tensor] = out
        return out

    def folded_bias(self, tensor: str, rank: int = 1) -> str | None:
        """A bias: a float constant, or a constant DQ of codes written as the float bias it dequantizes to."""
        g = self.g
        producer = g.producers.get(tensor)
        if g.const(tensor):
            return self.constant(tensor, _ranked(g.array(tensor), rank), self.case_type(g.elem(tensor)))
        if producer is None or producer.op_type != "DequantizeLinear" or not g.const(producer.input[0]):
            return None
        if not g.const(producer.input[1]) or (
            len(producer.input) > 2 and producer.input[2] and not g.const(producer.input[2])
        ):
            return None
        codes = g.array(producer.input[0]).astype(np.float64)
        scale = g.array(producer.input[1])
        zp = g.array(producer.input[2]).astype(np.float64) if len(producer.input) > 2 and producer.input[2] else 0.0
        axis = int(g.attrs(producer).get("axis", 1)) if scale.size > 1 else None
        if axis is not None:  # a per-channel bias scale lines up with the bias's own axis
            shape = [1] * codes.ndim
            shape[axis % codes.ndim] = -1
            scale = scale.reshape(shape)
            zp = zp.reshape(shape) if np.ndim(zp) else zp
        # ONNX: y = (x - x_zero_point) * x_scale in the scale's type; the INT32 difference is exact in float64,
        # and its product with a float32 scale rounded once to float32 is the float32 product.
        value = ((codes - zp).astype(scale.dtype) * scale).astype(scale.dtype)
        self.nodes.append(producer)
        return self.constant(f"{tensor}_folded", _ranked(value, rank), self.case_type(g.elem(producer.input[1])))


def _ranked(array: np.ndarray, rank: int) -> np.ndarray:
    """The same values with leading 1s up to `rank` dimensions: the broadcast ONNX implies, written out (TensorRT's
    elementwise layers need operands of one rank)."""
    return array.reshape((1,) * (rank - array.ndim) + array.shape) if array.ndim < rank else array


def _layer(island: Island, node) -> tuple[dict | None, str]:
    """The compute node as the case's layer(s), or (None, why not). Appends any extra layer (Gemm's bias add)."""
    g, attrs = island.g, island.g.attrs(node)
    name = island._fresh(node_id(node))
    op = node.op_type
    if op == "Conv":
        if len(g.shape(node.input[1]) or []) != 4:
            return None, "a Conv that is not 2-D (the case format's conv is 2-D)"
        x, w = island.operand(node.input[0]), island.operand(node.input[1])
        if x is None or w is None:
            return None, "an input through a Q/DQ whose scale is not a constant"
        layer = {"op": "conv", "name": name, "input": x, "weight": w}
        if len(node.input) > 2 and node.input[2]:
            b = island.folded_bias(node.input[2])
            if b is None:
                return None, "a bias that is neither a constant nor a constant DequantizeLinear"
            layer["bias"] = b
        for key, attr in (("stride", "strides"), ("dilation", "dilations")):
            if attrs.get(attr) is not None and list(attrs[attr]) != [1, 1]:
                layer[key] = list(attrs[attr])
        if attrs.get("group", 1) != 1:
            layer["groups"] = int(attrs["group"])
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return None, "auto_pad (the case format states pads)"
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if any(pads):  # ONNX: [top, left, bottom, right]
            layer["padding"] = pads
        return layer, ""
    if op == "Gemm":
        if (
            attrs.get("transA", 0)
            or attrs.get("transB", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            return None, "a Gemm with transA, transB, alpha or beta (the case format's matmul has none)"
        a, b = island.operand(node.input[0]), island.operand(node.input[1])
        if a is None or b is None:
            return None, "an input through a Q/DQ whose scale is not a constant"
        layer = {"op": "matmul", "name": name, "inputs": [a, b]}
        if len(node.input) > 2 and node.input[2]:
            bias = island.folded_bias(node.input[2], rank=2)  # ONNX broadcasts C; written at the output's rank
            if bias is None:
                return None, "a bias that is neither a constant nor a constant DequantizeLinear"
            island.network.append(layer)
            return {"op": "add", "name": island._fresh(f"{name}_bias"), "inputs": [name, bias]}, ""
        return layer, ""
    if op in ("MatMul", "Add"):
        a, b = island.operand(node.input[0]), island.operand(node.input[1])
        if a is None or b is None:
            return None, "an input through a Q/DQ whose scale is not a constant"
        return {"op": op.lower(), "name": name, "inputs": [a, b]}, ""
    if op == "Concat":
        parts = [island.operand(i) for i in node.input]
        if any(p is None for p in parts):
            return None, "an input through a Q/DQ whose scale is not a constant"
        return {"op": "concat", "name": name, "inputs": parts, "axis": int(attrs.get("axis", 0))}, ""
    if op in ("MaxPool", "AveragePool", "GlobalAveragePool"):
        shape = g.shape(node.input[0]) or []
        if len(shape) != 4:
            return None, "pooling that is not 2-D"
        x = island.operand(node.input[0])
        if x is None:
            return None, "an input through a Q/DQ whose scale is not a constant"
        if op == "GlobalAveragePool":
            return {"op": "pool", "name": name, "input": x, "kind": "average", "kernel": shape[2:]}, ""
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if any(pads) or attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            return None, "pooling with pads, ceil_mode or dilations (their counting rules differ between specs)"
        layer = {"op": "pool", "name": name, "input": x, "kind": "max" if op == "MaxPool" else "average"}
        layer["kernel"] = list(attrs["kernel_shape"])
        if attrs.get("strides"):
            layer["stride"] = list(attrs["strides"])
        return layer, ""
    return None, f"{op} is not a layer the case format has"


# The largest distance between neighbouring codes, in units of the scale: 1 for integers, 32 for FP8 E4M3 (between
# 416 and 448), 2 for FP4 E2M1 (between 4 and 6). A near tie (x / s against x * (1/s)) moves one code at most.
CODE_STEP = {"fp8": 32.0, "fp4": 2.0}


def _float_output_tolerance(island: Island, layer: dict) -> float:
    """A float output's tolerance: each dequantized operand of the layer may sit one code away (a near tie), so one
    largest code step of the largest scale per operand."""
    types = {x["to"] for x in island.network if x["op"] == "quantize"}
    types |= {x["dtype"] for x in island.network if x["op"] == "constant"}
    step = max([CODE_STEP.get(t, 1.0) for t in types] or [1.0])
    operands = layer.get("inputs") or [layer.get("input")]
    return island.max_scale * step * max(len(operands), 1)


def build(graph: Graph, node, files, tag: str, case_type, model_name: str, seed: int) -> tuple[dict | None, list, str]:
    """(case body, the Q/DQ nodes it holds, why not when the body is None) for one compute node."""
    island = Island(graph, files, tag, case_type)
    layer, why = _layer(island, node)
    if layer is None:
        return None, [], why
    if not island.nodes:
        return None, [], "no Q/DQ around it"
    if island.unexpressible:
        return None, [], island.unexpressible
    island.network.append(layer)
    outputs = [layer["name"]]
    after = [
        n for n in graph.consumers.get(node.output[0], []) if n.op_type == "QuantizeLinear" and graph.const(n.input[1])
    ]
    quantized_out = False
    if after:
        outputs = [island.qdq_layer(after[0], layer["name"])]
        quantized_out = True
        dq = [
            n
            for n in graph.consumers.get(after[0].output[0], [])
            if n.op_type == "DequantizeLinear" and graph.const(n.input[1])
        ]
        if dq:  # the pair after the layer, as the model writes it: the output is what the next layer reads
            outputs = [island.qdq_layer(dq[0], outputs[0])]
    if island.unexpressible:
        return None, [], island.unexpressible
    island.seed = seed
    std = island.max_scale * 40  # about +-100 quantization steps of the largest scale: saturation and ties both occur
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, tensor in island.fed.items():
        shape = next(layer_["shape"] for layer_ in island.network if layer_["name"] == name)
        feeds[tensor] = (rng.standard_normal(shape) * std).astype(np.float32)
    inputs = {name: island.files.value(f"{tag}-{name}-input", feeds[tensor]) for name, tensor in island.fed.items()}
    if not inputs:  # every operand a constant: a case still has a network input
        island.network.insert(0, {"op": "input", "name": "unused", "dtype": "float32", "shape": [1]})
        inputs = {"unused": [0]}
    qtypes = sorted({layer_["to"] for layer_ in island.network if layer_["op"] == "quantize"})
    body = {
        "name": tag,
        "title": f"{model_name}: {node.op_type} {node_id(node)!r} with its Q/DQ"
        + (" and the Quantize after it" if quantized_out else ""),
        "source": {"document": model_name, "where": f"node {node_id(node)!r} ({node.op_type})"},
        "tags": ["imported", "layers", node.op_type.lower(), *qtypes],
        "network": island.network,
        "outputs": outputs,
        "inputs": inputs or {},
        # Float sums in another order, and x/s against x*(1/s), may move a result across a rounding boundary:
        # one quantization step of the output. A float output: within one step of the largest scale in the case.
        "expect": {"reference": {"tolerance": {"steps": 1}}}
        if quantized_out
        else {"reference": {"tolerance": {"atol": _float_output_tolerance(island, layer), "rtol": 0}}},
    }
    # A conv or matmul whose every operand is dequantized is what Q/DQ placement asks TensorRT to run quantized:
    # the case says so, and backends that report their engine's layers (TensorRT's inspector, TensorRT-RTX's
    # builder log) are judged on it.
    dequantized = {layer_["name"] for layer_ in island.network if layer_["op"] == "dequantize"}
    quantized_compute = [
        layer_["name"]
        for layer_ in island.network
        if layer_["op"] in ("conv", "matmul")
        and all(
            o in dequantized
            for o in ([layer_["input"], layer_["weight"]] if layer_["op"] == "conv" else layer_["inputs"])
        )
    ]
    if quantized_compute:
        body["runs_quantized"] = quantized_compute
    refusal = contract_refusal(island)
    if refusal is None and _quantized_zero_point_constant(island):
        body["overrides"] = [NETWORK_API_ZERO_POINT]
    if refusal is not None:
        category, what = refusal
        out_tensor = island.nodes[-1].output[0] if quantized_out else node.output[0]
        values = onnx_meaning(graph.model, feeds, out_tensor)
        body["overrides"] = [
            {
                "backend": ["onnxruntime", "onnx-reference"],
                "expect": {
                    "values": island.files.value(f"{tag}-onnx-values", values),
                    "tolerance": next(iter(body["expect"].values()))["tolerance"],  # the case's own: steps or atol
                },
                "reason": f"the model means this in ONNX, which allows {what}; TensorRT's contract refuses it "
                f"({category}): the values are ONNX's reference evaluator on the model's own nodes",
            }
        ]
        if category == "unsupported-type" and _parser_meets_zero_point_first(island):
            body["overrides"].append(PARSER_ZERO_POINT_FIRST)
        if category == "scale-not-positive":
            body["overrides"].append(NEGATIVE_SCALE_BUILDS)
    return body, island.nodes, ""


def _parser_meets_zero_point_first(island: Island) -> bool:
    """What TensorRT-RTX's ONNX parser refuses first, reading the nodes in order (measured, 1.7.1): a
    DequantizeLinear of constant codes of a refused type ("Found unsupported input type of UINT8"), or a
    QuantizeLinear's non-zero zero point ("shiftIsAllZeros(zeroPoint)"); anything else parses, and the builder
    then refuses the unsigned type as the contract does. True when the zero point comes first."""
    for layer in island.network:
        if layer["op"] == "dequantize":
            source = next((x for x in island.network if x["name"] == layer["input"]), {})
            if source.get("op") == "constant" and source.get("dtype") not in CONTRACT_TYPES:
                return False
        elif layer["op"] == "quantize" and np.any(island.zero_point_of.get(layer["name"], 0) != 0):
            return True
    return False


# An unsigned type with a non-zero zero point: TensorRT-RTX 1.7.1's ONNX parser refuses the zero point before it
# looks at the type (measured; cases/rules/zero-point.yaml, uint8-asymmetric), the contract model the type first.
PARSER_ZERO_POINT_FIRST = {
    "backend": "tensorrt-rtx-onnx",
    "version": "==1.7.*",
    "reason": "Measured with TensorRT-RTX 1.7.1's ONNX parser (build on a CPU): it refuses a QuantizeLinear's non-zero "
    'zero point as it parses the node ("shiftIsAllZeros(zeroPoint)"), before the builder meets the unsigned type '
    "the contract refuses first",
    "expect": {"error": {"category": "zero-point-nonzero"}},
}


# A symmetric quantizer's negative scales: the contract refuses them (NvInfer.h 10.13+: scale coefficients must be
# strictly positive); TensorRT-RTX 1.7.1 builds them on both paths (measured on a CPU, ONNX Runtime's INT4 block
# quantizer's export). A build proves only that it did not refuse: its values need an RTX GPU.
NEGATIVE_SCALE_BUILDS = {
    "backend": ["tensorrt-rtx", "tensorrt-rtx-onnx"],
    "version": "==1.7.*",
    "reason": "Measured with TensorRT-RTX 1.7.1 (build on a CPU): its network API and its ONNX parser build negative "
    "scales, which NvInfer.h (10.13+) says must be strictly positive and the contract refuses; the builder does not "
    "check the rule (what the engine computes needs an RTX GPU to see)",
    "expect": "observe",
}


# D4: the exporter's zero point is an INT8 (or other quantized-type) constant on the QuantizeLinear. TensorRT-RTX's
# ONNX parser folds it and builds; its network API, given the same constant on a Quantize layer, refuses the build
# (measured, 1.7.1, as in field case F11). The case keeps what the exporter wrote and declares that refusal.
NETWORK_API_ZERO_POINT = {
    "backend": "tensorrt-rtx",
    "version": "==1.7.*",
    "reason": "Measured with TensorRT-RTX 1.7.1 (build on a CPU): its network API refuses a quantized-type constant "
    'as a Quantize layer\'s zero point (INT8: "Quantized constant (...) is only allowed before DQ", qdqGraphOptimizer, '
    'field case F11; FP8: "Unsupported datatype FP8", field case F19), where its ONNX parser builds the same model',
    "expect": {"error": {"category": "unsupported-type"}},
}


def _quantized_zero_point_constant(island: Island) -> bool:
    constants = {layer["name"]: layer for layer in island.network if layer["op"] == "constant"}
    return any(
        layer["op"] == "quantize"
        and layer.get("zero_point") in constants
        and constants[layer["zero_point"]]["dtype"] in CONTRACT_TYPES | {"uint8", "uint4"}
        for layer in island.network
    )


# What TensorRT's documented contract refuses and ONNX allows, in the order the contract model checks it
# (plugins/numpy/backend.py): a type first, then a zero point.
CONTRACT_TYPES = {"int8", "int4", "fp8", "fp4"}


def contract_refusal(island: Island) -> tuple[str, str] | None:
    for layer in island.network:
        if layer["op"] == "quantize" and layer["to"] not in CONTRACT_TYPES:
            return "unsupported-type", f"{layer['to'].upper()} quantization"
        if layer["op"] == "dequantize":
            source = next((x for x in island.network if x["name"] == layer["input"]), {})
            if source.get("op") == "constant" and source.get("dtype") not in CONTRACT_TYPES:
                return "unsupported-type", f"{str(source.get('dtype')).upper()} weights"
    if any(np.any(np.asarray(s, np.float64) <= 0) for s in island.scales):
        return "scale-not-positive", "negative or zero scales (a symmetric quantizer's sign folded into the scale)"
    if any(np.any(zp != 0) for zp in island.zero_point_of.values()):
        return "zero-point-nonzero", "a non-zero zero point (asymmetric quantization)"
    return None


def onnx_meaning(model, feeds: dict, output: str) -> np.ndarray:
    """The model's own nodes from `feeds` to `output` (walked back from the output, stopping at the fed tensors and
    the initializers), run by ONNX's reference evaluator."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    nodes, used, todo = [], set(), [output]
    while todo:
        name = todo.pop()
        if name in feeds or name in used or not name:
            continue
        used.add(name)
        if name in inits:
            continue
        node = producers[name]
        if node not in nodes:
            nodes.append(node)
            todo.extend(node.input)
    order = [n for n in model.graph.node if n in nodes]  # the model's own (topological) order
    graph = helper.make_graph(
        order,
        "island",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in feeds.items()],
        [helper.make_tensor_value_info(output, TensorProto.UNDEFINED, None)],
        [inits[n] for n in sorted(used) if n in inits],
    )
    from plugins.onnx.modelcase import for_reference  # the evaluator implements Q/DQ from opset 19

    sub = helper.make_model(graph, opset_imports=list(model.opset_import))
    sub.ir_version = model.ir_version
    return np.asarray(ReferenceEvaluator(for_reference(sub)).run(None, feeds)[0])

"""`qdq import --onnx-node-tests`: ONNX's own QuantizeLinear/DequantizeLinear node tests as cases.

The installed onnx package ships the generators of its backend node tests (`onnx/backend/test/case/node/`); each
`expect(node, inputs, outputs, name)` call is one test. Every such test of the two operators becomes one case with
ONNX's inputs and expected outputs copied exactly: `x` is a network input (a constant where ONNX Runtime's Python
API cannot feed its type: 2-bit codes and FP4), the scale and zero point are constants, and the node's attributes
become the case's `axis` and output type (ONNX's default axis 1 is written out: TensorRT has no default). The
block size of a blocked test is implied by the scale's shape, as in the case format; the import checks that it
equals the node's `block_size` and refuses a test it cannot express rather than write a different one.

The numpy reference models TensorRT's contract, not ONNX's: where it refuses a test (UINT8/INT16 types, non-zero
zero points, zero points shaped unlike the scale) or computes other values, the case declares it with the
reference's own reason, measured when the file is written. Re-running the import rewrites the files; a diff then
shows what changed in onnx or in the reference.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

OPS = ("QuantizeLinear", "DequantizeLinear")
SOURCE_DIR = "onnx/backend/test/case/node"


def _collect() -> list:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return [t for t in collect_testcases(None) if t.model.graph.node[0].op_type in OPS]


def _array(value) -> np.ndarray:
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def _type_name(array: np.ndarray, elem_type: int | None = None) -> str:
    from harness.cases import dtypes
    from plugins.onnx.export import ONNX_TYPES

    if elem_type is not None:
        for name, onnx_type in ONNX_TYPES.items():
            if onnx_type == elem_type:
                return name
    return dtypes.dtype_of(array).name


def _leaf(v) -> object:
    f = float(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _values(array: np.ndarray) -> list:
    return [_leaf(v) for v in np.asarray(array).astype(np.float64).ravel()]


def _flow(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


class Unexpressible(ValueError):
    pass


def case_of(test) -> dict:
    """One node test as the case format's mapping (plain data; `render` writes it)."""
    from onnx import helper

    node = test.model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    inputs, outputs = test.data_sets[0]
    graph_types = {
        vi.name: vi.type.tensor_type.elem_type for vi in list(test.model.graph.input) + list(test.model.graph.output)
    }
    names = [n for n in node.input if n]
    arrays = {n: _array(v) for n, v in zip(names, inputs)}
    types = {n: _type_name(arrays[n], graph_types.get(n)) for n in names}
    out_name = node.output[0]
    y = _array(outputs[0])
    y_type = _type_name(y, graph_types.get(out_name))
    x_name, s_name = names[0], names[1]
    zp_name = names[2] if len(names) > 2 else None
    x, s = arrays[x_name], arrays[s_name]
    axis = attrs.get("axis", 1)
    if x.ndim:
        axis = axis % x.ndim
    if "block_size" in attrs:
        # The format implies a block from the scale's shape (the one dimension where it differs from x's).
        blocked = [d for d in range(x.ndim) if s.ndim == x.ndim and s.shape[d] != x.shape[d]]
        if blocked != [axis] or math.ceil(x.shape[axis] / s.shape[axis]) != attrs["block_size"]:
            raise Unexpressible(
                f"{test.name}: block_size {attrs['block_size']} on axis {axis} is not what the "
                f"scale's shape {list(s.shape)} implies for x {list(x.shape)}"
            )
    from harness.cases import dtypes

    # ONNX Runtime takes INT4/UINT4 network inputs packed (plugins/onnx/onnxruntime_backend.py); 2-bit codes and
    # FP4 stay constants.
    feedable = dtypes.dtype(types[x_name]).bits >= 8 or types[x_name] in ("int4", "uint4")
    x_layer = (
        {"op": "input", "name": "x", "dtype": types[x_name], "shape": list(x.shape)}
        if feedable
        else {"op": "constant", "name": "x", "dtype": types[x_name], "shape": list(x.shape), "value": _values(x)}
    )
    network = [
        x_layer,
        {"op": "constant", "name": "s", "dtype": types[s_name], "shape": list(s.shape), "value": _values(s)},
    ]
    op = "quantize" if node.op_type == "QuantizeLinear" else "dequantize"
    layer = {"op": op, "name": "y", "input": "x", "scale": "s"}
    if zp_name is not None:
        zp = arrays[zp_name]
        network.append(
            {"op": "constant", "name": "zp", "dtype": types[zp_name], "shape": list(zp.shape), "value": _values(zp)}
        )
        layer["zero_point"] = "zp"
    if s.size > 1 and s.ndim == 1:
        layer["axis"] = axis
    layer["to"] = y_type
    network.append(layer)
    case = {
        "name": test.name.removeprefix("test_").replace("_", "-"),
        "title": f"ONNX node test {test.name}: {node.op_type}, {types[x_name]} -> {y_type}"
        + (f", axis {attrs['axis']}" if "axis" in attrs else "")
        + (f", block_size {attrs['block_size']}" if "block_size" in attrs else ""),
        "source": {
            "document": f"onnx {_onnx_version()}: {SOURCE_DIR}/{node.op_type.lower()}.py",
            "where": f"{node.op_type}.{_method(test.name, node.op_type)} -> expect(name={test.name!r})",
        },
        "tags": ["onnx-node-test", node.op_type.lower(), types[x_name] if op == "dequantize" else y_type],
        "network": network,
        "outputs": ["y"],
        "expect": {"values": _values(y)},
    }
    if feedable:
        case["inputs"] = {"x": _values(x)}
    return case


def _method(test_name: str, op_type: str) -> str:
    rest = test_name.removeprefix("test_").removeprefix(op_type.lower())
    return "export" + rest


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


# The backends whose semantics are ONNX's: they must reproduce every node test, so nothing is declared for them.
ONNX_SEMANTICS = ("onnxruntime", "onnx-reference")


def measured_overrides(files: list[Path], root: Path) -> dict[str, list[dict]]:
    """Every installed backend run on the freshly written cases through `qdq run` (the harness's own run path: its
    isolation, timeouts and verdicts), the bundle read back; where a backend outside ONNX's semantics refuses a
    test or computes other values, an override saying so, with its own message and the version it was measured
    with (the contract model, the harness's own code, is not version-gated). Build-only results (no GPU) and
    skips declare nothing. Returns case name -> overrides."""
    import subprocess
    import sys
    import tempfile

    from harness.results import bundle

    found: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="qdq-import-") as tmp:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli.main",
                "run",
                *map(str, files),
                "--root",
                str(root),
                "--out",
                tmp,
                "--no-report",
            ],
            capture_output=True,
            text=True,
        )
        doc = bundle.load(Path(tmp))
        if not doc.get("records"):
            raise RuntimeError(f"qdq run of the imported cases recorded nothing: {run.stderr[-2000:]}")
        for record in doc["records"]:
            name, backend = record["case_id"].rsplit("::", 1)[-1], record["backend"]
            if backend in ONNX_SEMANTICS or record["status"] != "fail" or backend not in doc["backends"]:
                continue
            info = doc["backends"][backend]
            contract = backend == _contract()
            why = (
                "TensorRT's documented contract (the numpy model) differs from ONNX here: "
                if contract
                else f"measured when imported ({backend} {info['version']}): "
            )
            entry = {"backend": backend}
            if not contract and info.get("version"):
                entry["version"] = "==" + ".".join(info["version"].split(".")[:2]) + ".*"
            if record.get("error"):
                error = record["error"]
                found.setdefault(name, []).append(
                    {
                        **entry,
                        "expect": {"error": {"category": error["category"]}},
                        "reason": why + error["message"].splitlines()[0][:300],
                    }
                )
            elif record["kind"] == "numeric-mismatch":
                got = bundle.record_outputs(Path(tmp), record)["y"]
                found.setdefault(name, []).append(
                    {**entry, "expect": {"values": _values(got)}, "reason": why + "other values"}
                )
    return found


def _contract() -> str | None:
    from harness.engine.backend import contract_model

    return contract_model()


def render(op_type: str, cases: list[dict]) -> str:
    lines = [
        "# yaml-language-server: $schema=../../harness/schema/case.schema.json",
        f"# Written by `qdq import --onnx-node-tests` from onnx {_onnx_version()}'s node test generators: do not edit by",
        "# hand; re-run the import. Inputs and expected outputs are ONNX's own (independent of this harness).",
        f'source: {{document: "onnx {_onnx_version()}: {SOURCE_DIR}/{op_type.lower()}.py", '
        f'where: "{op_type} node tests"}}',
        f"tags: [onnx-node-test, {op_type.lower()}]",
        "cases:",
    ]
    for case in cases:
        lines.append(f"  - name: {case['name']}")
        lines.append(f"    title: {_flow(case['title'])}")
        lines.append(f"    source: {_flow(case['source'])}")
        lines.append(f"    tags: {_flow(case['tags'])}")
        lines.append("    network:")
        for layer in case["network"]:
            lines.append(f"      - {_flow(layer)}")
        lines.append(f"    outputs: {_flow(case['outputs'])}")
        if "inputs" in case:
            lines.append(f"    inputs: {_flow(case['inputs'])}")
        lines.append(f"    expect: {_flow(case['expect'])}")
        if case.get("overrides"):
            lines.append("    overrides:")
            for o in case["overrides"]:
                lines.append(f"      - {_flow(o)}")
    return "\n".join(lines) + "\n"


def import_node_tests(out_dir: Path) -> tuple[list[Path], list[str]]:
    """Writes one file per operator under `out_dir`; returns the files and the tests it could not express."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_op: dict[str, list[dict]] = {op: [] for op in OPS}
    refused = []
    for test in _collect():
        try:
            by_op[test.model.graph.node[0].op_type].append(case_of(test))
        except Unexpressible as exc:
            refused.append(str(exc))
    paths = {op: out_dir / f"{op.lower()}.yaml" for op in OPS}
    for op, cases in by_op.items():
        paths[op].write_text(render(op, cases))
    from harness.cases.load import find_root

    overrides = measured_overrides(list(paths.values()), find_root(out_dir))
    for op, cases in by_op.items():
        for case in cases:
            if case["name"] in overrides:
                case["overrides"] = overrides[case["name"]]
        paths[op].write_text(render(op, cases))
    return list(paths.values()), refused


def import_command(source: str, output: Path | None, force: bool = False) -> tuple[int, str]:
    """`qdq import onnx-node-tests [-o DIR]` (default cases/onnx-node)."""
    from harness.results import ownership

    out = Path(output) if output else Path("cases") / "onnx-node"
    refusal = None if force else ownership.problem(out, ownership.IMPORT_MARKER, "imported cases", "-o")
    if refusal:
        return 2, refusal
    ownership.claim(out, ownership.IMPORT_MARKER, "qdq import onnx-node-tests")
    written, refused = import_node_tests(out)
    from harness.cases.load import load_file

    count = sum(len(load_file(p)) for p in written)
    lines = [f"{', '.join(map(str, written))}: {count} cases from onnx {_onnx_version()}'s node tests"]
    lines += [f"  not expressible: {r}" for r in refused]
    return (1 if refused else 0), "\n".join(lines)

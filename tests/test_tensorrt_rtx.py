"""TensorRT-RTX's real builder on the CPU: build verdicts, valid twins, never a pass for values it cannot run."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, run_qdq

trt_rtx = pytest.importorskip(
    "tensorrt_rtx", reason="tensorrt-rtx-cu12 is not installed (pip install 'qdq-harness[rtx]')"
)


@pytest.fixture(scope="module")
def rtx_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rtx")
    r = run_qdq("run", "cases/docs", "cases/rules", "--backend", "tensorrt-rtx", "--out", str(out))
    return r, {rec["case_id"]: rec for rec in json.loads((out / "results.json").read_text())["records"]}


def test_backends_lists_tensorrt_unavailable_and_rtx_available():
    out = run_qdq("backends").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for name in ("tensorrt", "tensorrt-onnx"):
        assert " no " in rows[name]
        assert "module missing: tensorrt" in rows[name] or "CUDA" in rows[name] or "GPU" in rows[name]
    assert " yes " in rows["tensorrt-rtx"] and trt_rtx.__version__ in rows["tensorrt-rtx"]
    assert "not TensorRT" in rows["tensorrt-rtx"]


def test_error_cases_pass_against_the_real_builder(rtx_run):
    r, records = rtx_run
    assert r.returncode == 0, r.stdout[-3000:]
    zp = records["docs/s3-zero-point"]
    assert zp["status"] == "pass" and "aren't all zeros" in zp["error"]["native"]
    length = records["rules/scale::length-mismatch"]
    assert length["status"] == "pass" and "ScaleMode is illegal" in length["error"]["native"]


def test_value_cases_are_skips_never_passes(rtx_run):
    _, records = rtx_run
    for case_id in ("docs/s1-per-tensor-int8", "docs/s2-per-channel-axis1", "docs/s5-block-int4"):
        rec = records[case_id]
        assert rec["status"] == "skip" and "engine built" in rec["reason"] and "no GPU to run it" in rec["reason"]


def test_versions_never_match_tensorrt_overrides(rtx_run):
    _, records = rtx_run
    # docs/s1-axis-not-set declares a `tensorrt <9` error; RTX 1.7 must not pick it up.
    assert records["docs/s1-axis-not-set"]["override"] is None


def test_valid_twins_build_for_error_cases():
    from harness.cases.load import load_file
    from harness.engine.twin import valid_twins
    from plugins.tensorrt.rtx_backend import TensorRTRTXBackend

    backend = TensorRTRTXBackend()
    for rel in ("docs/s3-zero-point.yaml", "rules/scale.yaml"):
        for case in load_file(REPO / "cases" / rel, REPO / "cases"):
            assert valid_twins(case)
            assert backend.skip_reason(case) is None  # every twin built for real


def test_repro_script_runs_to_build_serialized_network(tmp_path):
    script = tmp_path / "rtx.py"
    assert run_qdq("repro", "docs/s2-per-channel-axis1", "--backend", "tensorrt-rtx", "-o", str(script)).returncode == 0
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "build_serialized_network:" in run.stdout and "bytes" in run.stdout
    refused = tmp_path / "zp.py"
    run_qdq("repro", "docs/s3-zero-point", "--backend", "tensorrt-rtx", "-o", str(refused))
    run = subprocess.run([sys.executable, str(refused)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "aren't all zeros" in run.stdout + run.stderr


# What TensorRT-RTX 1.7.1 logged on an H100 (docs/tensorrt-rtx.md), fed through a runtime whose
# deserialize_cuda_engine answers as it did there: None, with this message in the log.
HOPPER_REFUSAL = (
    "IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error (The engine cannot run on this GPU, "
    "which has compute capability 9.0. Supported compute capabilities: 8.0 8.6 8.9 12.0 12.1 >12.0. "
    "TensorRT-RTX does not support this compute capability, so the engine cannot be rebuilt for it.)"
)


class _HopperCuda:
    """cuda.bindings.runtime as a Hopper machine answers the calls the backend makes before deserializing."""

    class _Props:
        name, major, minor = b"NVIDIA H100 80GB HBM3", 9, 0

    def cudaRuntimeGetVersion(self):
        return 0, 12090

    def cudaDriverGetVersion(self):
        return 0, 13000

    def cudaGetDeviceCount(self):
        return 0, 1

    def cudaGetDeviceProperties(self, index):
        return 0, self._Props()


def test_a_gpu_rtx_refuses_makes_value_cases_skips_naming_its_compute_capability(monkeypatch):
    import plugins.tensorrt.runtime as trt_runtime
    import plugins.tensorrt.rtx_backend as rtx_mod
    from harness.cases.load import load_file
    from harness.engine.execute import execute
    from harness.engine.verdict import judge

    calls = []

    class HopperRuntime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, plan):
            calls.append(len(plan))
            self.logger.log(trt_rtx.ILogger.Severity.ERROR, HOPPER_REFUSAL)
            return None

    class RtxOnHopper:  # the real module (its real builder), with the runtime answering as on an H100
        Runtime = HopperRuntime

        def __getattr__(self, name):
            return getattr(trt_rtx, name)

    monkeypatch.setattr(rtx_mod.TensorRTRTXBackend, "module", lambda self: RtxOnHopper())
    monkeypatch.setattr(rtx_mod, "gpu_status", lambda: (True, ""))
    monkeypatch.setattr(trt_runtime, "cuda_runtime", lambda: _HopperCuda())
    backend = rtx_mod.TensorRTRTXBackend()
    for rel in ("docs/s1-per-tensor-int8.yaml", "docs/s2-per-channel-axis1.yaml"):
        (case,) = load_file(REPO / "cases" / rel, REPO / "cases")
        outcome = execute(backend, case)
        verdict = judge(case, backend.name, trt_rtx.__version__, outcome)
        assert verdict.status == "skip", verdict
        assert (
            "compute capability 9.0" in verdict.reason and "Supported compute capabilities: 8.0 8.6" in verdict.reason
        )
        assert verdict.reason.startswith("engine built (")
    assert len(calls) == 1  # decided once: the second case did not try again


def test_many_refused_builds_in_one_worker_do_not_deadlock(tmp_path):
    # A logger made per build deadlocked RTX 1.7 in a new Builder's first log call, in the worker, after a dozen
    # builds refused in add_input: this exact run hung at dequantizelinear-int16 until the 600 s watchdog. It
    # takes about 2 s when nothing hangs.
    # Without their overrides (as the importer first writes them), so that each refusal is also probed with a
    # valid twin: more builds per case, and the hang's conditions.
    import re

    cases = tmp_path / "cases" / "onnx-node"
    cases.mkdir(parents=True)
    files = []
    for name in ("quantizelinear.yaml", "dequantizelinear.yaml"):
        text = (REPO / "cases" / "onnx-node" / name).read_text()
        (cases / name).write_text(re.sub(r"\n    overrides:\n(      - .*\n)+", "\n", text))
        files.append(str(cases / name))
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli.main",
            "run",
            *files,
            "--backend",
            "tensorrt-rtx",
            "--out",
            str(out),
            "--no-report",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    records = json.loads((out / "results.json").read_text())["records"]
    assert len([rec for rec in records if rec["backend"] == "tensorrt-rtx"]) == 27, r.stdout[-2000:]
    assert "overrides" not in (cases / "quantizelinear.yaml").read_text()


def test_fp8_and_int4_constants_reach_the_builder_as_typed_weights():
    # FP8 bytes and INT4 packed pairs through Weights(type, ptr, count): RTX builds a DQ of each (a weight-only
    # INT4 layer is the common case); before, the harness refused such constants itself.
    from harness.cases.load import load_file
    from harness.engine.execute import execute
    from plugins.tensorrt.rtx_backend import TensorRTRTXBackend

    backend = TensorRTRTXBackend()
    cases = {c.id: c for c in load_file(REPO / "cases" / "onnx-node" / "dequantizelinear.yaml", REPO / "cases")}
    e4m3 = execute(backend, cases["onnx-node/dequantizelinear::dequantizelinear-e4m3fn"])
    assert e4m3.built_not_run and not e4m3.error
    # INT4 with 5 elements: NVIDIA's builder itself refuses the odd count (not the harness).
    int4 = execute(backend, cases["onnx-node/dequantizelinear::dequantizelinear-int4"])
    assert int4.error.category == "sub-byte-odd-count" and "odd tensor volume" in int4.error.native


def test_rtx_onnx_parser_interpretation_check_catches_the_uint8_default():
    # A QuantizeLinear with neither zero point nor output_dtype means UINT8 in ONNX; TensorRT-RTX 1.7's parser makes
    # an INT8 Quantize of it (docs/tensorrt-rtx.md). The check reads the parsed layer back and says so.
    from harness.cases.load import load_file
    from harness.engine.execute import execute

    case = load_file(REPO / "cases" / "field" / "onnx-defaults.yaml", REPO / "cases")[0]
    outcome = execute(_rtx_onnx(), case)
    assert outcome.error is not None and outcome.error.category == "interpretation-mismatch"
    assert "QuantizeLinear 'q': the case's stated output type uint8, parsed as int8" in outcome.error.message


def test_a_stated_interpretation_is_what_the_parsed_network_is_checked_against(tmp_path):
    # rules/onnx-parser-axis: RTX 1.7's parser reads the missing axis as 1, ONNX's default. A case stating axis 0
    # (what the 8.x-10.1 parsers' source does) is then a mismatch naming the stated value.
    from harness.cases.load import load_file
    from harness.engine.execute import execute

    text = (REPO / "cases" / "rules" / "onnx-parser-axis.yaml").read_text()
    (tmp_path / "cases").mkdir()
    case_file = tmp_path / "cases" / "axis.yaml"
    case_file.write_text(text.replace("interpretation: {y: {axis: 1}}", "interpretation: {y: {axis: 0}}"))
    outcome = execute(_rtx_onnx(), load_file(case_file, tmp_path / "cases")[0])
    assert outcome.error.category == "interpretation-mismatch"
    assert "DequantizeLinear 'y': the case's stated axis 0, parsed as axis 1" in outcome.error.message
    same = execute(_rtx_onnx(), load_file(REPO / "cases" / "rules" / "onnx-parser-axis.yaml", REPO / "cases")[0])
    assert same.error is None and same.built_not_run


def test_rtx_onnx_parser_gives_real_parser_verdicts():
    from harness.cases.load import load_file
    from harness.engine.execute import execute

    cases = {c.id: c for c in load_file(REPO / "cases" / "onnx-node" / "quantizelinear.yaml", REPO / "cases")}
    zp = execute(_rtx_onnx(), cases["onnx-node/quantizelinear::quantizelinear"])
    assert zp.error.category == "zero-point-nonzero" and "shiftIsAllZeros" in zp.error.native
    fp8 = execute(_rtx_onnx(), load_file(REPO / "cases" / "layers" / "qdq-around-layers.yaml", REPO / "cases")[0])
    assert fp8.built_not_run and "engine built" in fp8.built_not_run


def _rtx_onnx():
    from harness.engine.config import RunConfig
    from plugins.tensorrt.rtx_onnx_backend import TensorRTRTXOnnxBackend

    backend = TensorRTRTXOnnxBackend()
    backend.configure(RunConfig.defaults())
    return backend


@pytest.mark.parametrize(
    "case_id",
    ["layers/qdq-around-layers::grouped-conv-bias-relu", "coverage/dequantize::dq-int4-per-tensor-rank2-to-float32"],
)
def test_repro_scripts_of_layers_and_typed_weights_build_on_the_real_builder(case_id, tmp_path):
    # The script writes the conv (kernel through set_input, groups, bias) and INT4 weights packed two per byte; the
    # real builder accepts both (on a CPU it stops before running the engine, and says so).
    script = tmp_path / "repro.py"
    made = run_qdq("repro", case_id, "--backend", "tensorrt-rtx", "-o", str(script))
    assert made.returncode == 0, made.stderr
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "engine built (" in r.stdout or r.returncode == 0, (r.stdout + r.stderr)[-2000:]


def test_the_numpy_repro_says_it_writes_no_compute_layers():
    r = run_qdq("repro", "layers/conv::conv3x3-per-channel-weights", "--backend", "numpy")
    assert r.returncode == 2 and "writes Q/DQ layers only" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("backend", ["tensorrt-rtx", "tensorrt-rtx-onnx"])
def test_the_builder_log_shows_a_float_fallback_on_a_cpu(backend):
    """cases/layers/conv-weight-axis: with the weights per output channel the conv runs on INT8 inputs; per input
    channel the same conv builds but runs in float (NVIDIA's builder says so in its log, no GPU needed). A case
    asking `runs_quantized` of the second fails RAN-UNQUANTIZED."""
    import dataclasses

    from harness.cases.load import load_file
    from harness.engine.backend import instance
    from harness.engine.config import RunConfig
    from harness.engine.execute import execute
    from harness.engine.verdict import judge

    rtx = instance(backend)
    rtx.configure(RunConfig.defaults())
    version = rtx.availability().version
    cases = {c.id.split("::")[1]: c for c in load_file(REPO / "cases/layers/conv-weight-axis.yaml", REPO / "cases")}
    verdicts = {}
    for name, case in cases.items():
        case = dataclasses.replace(case, runs_quantized=["c"])
        outcome = execute(rtx, case)
        assert outcome.built_not_run, outcome.crash or outcome.error  # built for real, not run (no GPU)
        verdicts[name] = (judge(case, backend, version, outcome), outcome.details)
    axis0, details0 = verdicts["axis0"]
    assert axis0.status == "skip" and "runs quantized as built" in axis0.reason and "c on int8" in axis0.reason
    assert any("correlation: int8" in layer for layer in details0["engine_layers"])
    axis1, details1 = verdicts["axis1"]
    assert axis1.kind == "ran-unquantized" and "'c' runs with inputs ['float32']" in axis1.reason
    assert details1["layer_types"]["c"] == ["float32"]


def test_the_builder_log_parser_on_the_lines_nvidia_prints():
    """Lines as TensorRT-RTX 1.7.1.116 printed them on a CPU (the conv of cases/layers/conv-weight-axis, axis 1)."""
    from plugins.tensorrt.buildlog import engine_layers, network_layer, precision_details

    message = (
        "Layers:\n"
        "Name: __myl_CastMulCast_myl0_0, LayerType: kgen, Inputs: [], Constants: [ { Name: w, Dimensions: [2,2,3,3],"
        " Datatype: Int8, Format: (Linear) Row major linear format }], Outputs: [ { Name: o, Datatype: Float }],"
        " TacticName: __myl_CastMulCast_0x1, StreamId: 0, Metadata: \n"
        "Name: c_U7_myl0_2, LayerType: correlation, Inputs: [ { Name: a, Dimensions: [1,2,4,4], Strides: [32,1,8,2],"
        " Datatype: Float, Format: (NHWC) Channel major format }, { Name: b, Dimensions: [2,2,3,3], Datatype: Float,"
        " Format: (Linear) Row major linear format }], Outputs: [ { Name: c, Datatype: Float }], TacticName: x,"
        " StreamId: 0, Metadata: \n\nI/O Tensors:\n Name: x, IOMode: Input, DataType: Float\n"
    )
    layers = engine_layers(message)
    assert layers == {
        "__myl_CastMulCast_myl0_0": {"type": "kgen", "inputs": []},
        "c_U7_myl0_2": {"type": "correlation", "inputs": ["float32", "float32"]},
    }
    assert network_layer("c_U7_myl0_2") == "c" and network_layer("conv_1_myl0_3") == "conv_1"
    assert network_layer("__myl_MulReluMulMinMaxRounCastCastMul_myl0_2") is None
    details = precision_details([("VERBOSE", "something else"), ("VERBOSE", message)])
    assert details["layer_types"] == {"c": ["float32"]} and details["layers_source"].startswith("builder log")
    assert precision_details([("INFO", "no layers here")]) == {}


def test_a_whole_symmetric_int8_transformer_builds_with_every_matmul_on_int8(tmp_path):
    """NVIDIA's parser and builder on a whole real export (ONNX Runtime's quantizer, symmetric INT8), as
    `qdq import --whole` writes it and `qdq run` runs it: it builds, and its log shows the projections and both
    attention MatMuls running on INT8 inputs."""
    import quantized_models

    float_model, model = tmp_path / "block.onnx", tmp_path / "block-q.onnx"
    quantized_models.transformer(float_model)
    quantized_models.quantize(float_model, model, per_channel=True, unsigned=False, symmetric=True)
    folder = tmp_path / "cases" / "block"
    assert run_qdq("import", "--whole", str(model), "-o", str(folder)).returncode == 0
    out = tmp_path / "out"
    run_qdq("run", str(folder / "whole.yaml"), "--backend", "tensorrt-rtx-onnx", "--out", str(out), "--no-report")
    (record,) = json.loads((out / "results.json").read_text())["records"]
    assert record["skip_kind"] in ("built-not-run", "unsupported-gpu"), record["reason"]
    layer_types = record["details"]["layer_types"]
    for layer in ("q_proj", "k_proj", "v_proj", "qk", "pv", "o_proj"):
        assert layer_types.get(layer) == ["int8"], (layer, layer_types)


@pytest.mark.parametrize("export", ["int8-per-channel", "uint8-per-tensor"])
def test_the_contract_model_refuses_a_whole_model_where_nvidias_parser_does(tmp_path, export):
    """ONNX Runtime's asymmetric exports of a transformer block, run whole: the contract model (its Q/DQ inside
    ONNX's reference evaluator, refusing at the first node that breaks the contract) and TensorRT-RTX's ONNX parser
    refuse the same node, in the same category."""
    import json
    import re

    import quantized_models

    float_model, model = tmp_path / "block.onnx", tmp_path / "block-q.onnx"
    quantized_models.transformer(float_model)
    quantized_models.quantize(float_model, model, per_channel=export == "int8-per-channel", unsigned="uint8" in export)
    folder = tmp_path / "cases" / "block"
    assert run_qdq("import", "--whole", str(model), "-o", str(folder)).returncode == 0
    out = tmp_path / "out"
    run_qdq(
        "run", str(folder / "whole.yaml"), "--backend", "numpy", "--backend", "tensorrt-rtx-onnx", "--out", str(out)
    )
    records = {r["backend"]: r for r in json.loads((out / "results.json").read_text())["records"]}
    contract, nvidia = records["numpy"]["error"], records["tensorrt-rtx-onnx"]["error"]
    assert contract is not None and nvidia is not None, records
    assert contract["category"] == nvidia["category"]
    assert records["tensorrt-rtx-onnx"]["status"] == "pass"  # the case expects the contract's refusal
    node = re.search(r"'([^']+)'", contract["message"]).group(1)
    assert f"name: {node} " in nvidia["native"]

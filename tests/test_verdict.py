"""The verdict logic on hand-made outcomes: declared deviations, their disappearance, errors, crashes."""

import numpy as np
import pytest

from harness.cases.errors import QdqError
from harness.engine.execute import Outcome
from harness.engine.verdict import judge

CASE = """
title: t
source: {document: d}
network:
  - {op: input, name: x, dtype: float32, shape: [3]}
  - {op: constant, name: s, dtype: float32, shape: [], value: 1}
  - {op: quantize, name: q, input: x, scale: s, to: int8}
  - {op: dequantize, name: y, input: q, scale: s, to: float32}
outputs: [y]
inputs: {x: [1, 2, 3]}
expect: {values: [1, 2, 3]}
overrides:
  - {backend: other, reason: "other adds one", expect: {values: [2, 3, 4]}}
  - {backend: versioned, version: "<2", reason: "old versions refuse", expect: {error: {category: build-failed, message: "too old"}}}
"""


def out(*values):
    return Outcome(outputs={"y": np.array(values, np.float32)})


@pytest.fixture
def case(load_case):
    return load_case(CASE)[0]


def test_values_pass_and_fail(case):
    assert judge(case, "numpy", None, out(1, 2, 3)).status == "pass"
    v = judge(case, "numpy", None, out(1, 2, 4))
    assert (v.status, v.kind) == ("fail", "numeric-mismatch") and v.message.startswith("NUMERIC-MISMATCH: ")
    assert v.metrics["y"]["mismatched"] == 1 and v.metrics["y"]["first"][0]["index"] == [2]


def test_declared_deviation_and_its_disappearance(case):
    v = judge(case, "other", "1.0", out(2, 3, 4))
    assert (v.status, v.kind) == ("xfail", "declared-deviation") and "other adds one" in v.reason
    gone = judge(case, "other", "1.0", out(1, 2, 3))
    assert (gone.status, gone.kind) == ("fail", "deviation-no-longer-observed")
    neither = judge(case, "other", "1.0", out(9, 9, 9))
    assert (neither.status, neither.kind) == ("fail", "numeric-mismatch")


def test_version_gated_override(case):
    err = Outcome(error=QdqError("build-failed", "too old for this"))
    assert judge(case, "versioned", "1.5", err).status == "xfail"
    # On a newer version the override does not apply: the refusal is an unexpected error there.
    v = judge(case, "versioned", "2.1", err)
    assert (v.status, v.kind) == ("fail", "unexpected-error")
    # A version that cannot be parsed never matches a specifier.
    assert judge(case, "versioned", "nightly", err).kind == "unexpected-error"


def test_error_expectations(load_case):
    case = load_case(
        CASE.replace(
            "expect: {values: [1, 2, 3]}", "expect: {error: {category: invalid-axis, message: 'negative axis'}}"
        )
    )[0]
    ok = Outcome(error=QdqError("invalid-axis", "x", native="unexpected negative axis"))
    assert judge(case, "numpy", None, ok).status == "pass"
    assert (
        judge(case, "numpy", None, Outcome(error=QdqError("invalid-axis", "x", native="axis 5 too big"))).kind
        == "wrong-error"
    )
    assert judge(case, "numpy", None, Outcome(error=QdqError("scale-not-positive", "x"))).kind == "wrong-error"
    assert judge(case, "numpy", None, out(1, 2, 3)).kind == "missing-expected-error"


def test_crash_is_an_error_and_skip_is_a_skip(case):
    v = judge(case, "numpy", None, Outcome(crash="Traceback ...\nRuntimeError: boom"))
    assert (v.status, v.kind, v.reason) == ("error", "backend-crash", "RuntimeError: boom")
    assert judge(case, "numpy", None, Outcome(skip="too big")).status == "skip"


def test_documentation_deviation(load_case):
    text = CASE + "documented: {values: [1, 2, 3.5], tolerance: {atol: 0.1}, reason: 'the doc prints 3.5'}\n"
    case = load_case(text)[0]
    v = judge(case, "numpy", None, out(1, 2, 3))
    assert (v.status, v.kind) == ("xfail", "documentation-deviation") and "the doc prints 3.5" in v.reason
    # If the contract's values and the document's ever coincide, the flagged deviation is reported as gone.
    same = load_case(CASE + "documented: {values: [1, 2, 3.04], tolerance: {atol: 0.1}, reason: r}\n", "t/b.yaml")[0]
    assert judge(same, "numpy", None, out(1, 2, 3)).kind == "deviation-no-longer-observed"


def test_step_tolerance(load_case):
    case = load_case(
        CASE.replace("value: 1}", "value: 0.5}").replace(
            "expect: {values: [1, 2, 3]}", "expect: {values: [1, 2, 3], tolerance: {steps: 1}}"
        )
    )[0]
    assert judge(case, "numpy", None, out(1, 2.5, 3)).status == "pass"  # one step of 0.5
    assert judge(case, "numpy", None, out(1, 3.5, 3)).status == "fail"  # three steps


def test_a_layer_that_ran_in_float_is_named_from_the_engine_inspector():
    # The shape of the inspector's DETAILED JSON as NVIDIA's developer guide prints it: fused network layers joined
    # by " + ", each input with its "Format/Datatype".
    import json

    from harness.engine.verdict import unquantized
    from plugins.tensorrt.inspector import precision_details

    def engine(fmt):
        details = precision_details(
            json.dumps(
                {
                    "Layers": [
                        {
                            "Name": "c + y",
                            "LayerType": "CaskConvolution",
                            "Inputs": [{"Name": "xq", "Format/Datatype": fmt}],
                            "Outputs": [{"Name": "y", "Format/Datatype": fmt}],
                        },
                        {
                            "Name": "d [ONNX Layer: Conv]",
                            "Inputs": [{"Format/Datatype": "Row major linear FP32 format"}],
                        },
                    ]
                }
            )
        )
        return details["layer_types"], details["engine_layers"]

    assert unquantized(["c"], *engine("Thirty-two wide channel vectorized row major Int8 format.")) is None
    problem = unquantized(["c"], *engine("Row major linear FP32 format"))
    assert problem and "'c' runs with inputs ['float32']" in problem
    assert "'d' runs with inputs ['float32']" in unquantized(["d"], *engine("Int8"))  # a parser's suffix is read off
    assert "is in no engine layer" in unquantized(["conv9"], *engine("Int8"))
    assert precision_details("not json") == {}


def test_a_build_without_a_gpu_is_judged_against_the_references_refusal(load_case):
    """`expect: reference` where the reference refuses the case: a backend that builds it (and has no GPU to run
    it) has shown the expected error did not happen; a declared `observe` for that backend makes it a deviation."""
    case = load_case(CASE.replace("expect: {values: [1, 2, 3]}", "expect: reference"))[0]
    refused = Outcome(error=QdqError("scale-not-positive", "scale -1"))
    built = Outcome(built_not_run="engine built (1000 bytes), no GPU to run it")
    v = judge(case, "builder", "1", built, reference=lambda: refused, reference_name="numpy")
    assert (v.status, v.kind) == ("fail", "missing-expected-error") and "scale-not-positive" in v.reason
    ran = Outcome(outputs={"y": np.array([1, 2, 3], np.float32)})
    v = judge(case, "builder", "1", built, reference=lambda: ran, reference_name="numpy")
    assert (v.status, v.skip_kind) == ("skip", "built-not-run")  # values unknown: nothing proven
    declared = load_case(
        CASE.replace("expect: {values: [1, 2, 3]}", "expect: reference").replace(
            "  - {backend: other,",
            '  - {backend: builder, reason: "it builds what the contract refuses", expect: observe}\n  - {backend: other,',
        ),
        "t/declared.yaml",
    )[0]
    v = judge(declared, "builder", "1", built, reference=lambda: refused, reference_name="numpy")
    assert (v.status, v.kind) == ("xfail", "declared-deviation")

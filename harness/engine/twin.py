"""Valid twins: for each quantize/dequantize of a case, the smallest valid network with the same types.

A backend that lacks a feature (FP4 or BF16 on ONNX Runtime's CPU provider, FP8 on an RTX target) refuses the
twin too; that makes the case a *skip* naming the feature, so a missing kernel neither satisfies nor hides an
error expectation. Found by trying, never from a hand-kept table.
"""

from __future__ import annotations

from dataclasses import replace

from harness.cases.case import Case, Expectation, Layer
from harness.cases.dtypes import FLOAT_TYPES, QUANTIZED_TYPES
from harness.cases.network import NetworkInfo


# Refusals that a twin with the same types would share: for cases expecting them, the twin proves nothing.
FEATURE_CATEGORIES = ("unsupported-type", "unsupported-on-target")


def twin_key(real: str, quantized: str) -> str:
    return f"{real}->{quantized}->{real}"


def valid_twins(case: Case) -> dict[str, Case]:
    """One twin per distinct (float type, quantized type) pair of the case's Q/DQ layers, keyed by `twin_key`."""
    info = NetworkInfo(case)
    pairs = {}
    for layer in case.network:
        if layer.op == "quantize":
            real, quantized = info.dtype(layer.input), layer.output_type
        elif layer.op == "dequantize":
            real, quantized = layer.output_type, info.dtype(layer.input)
        else:
            continue
        if real in FLOAT_TYPES and quantized in QUANTIZED_TYPES:  # a twin must itself be valid
            pairs[twin_key(real, quantized)] = (real, quantized)
    return {key: _twin(case, real, quantized, key) for key, (real, quantized) in pairs.items()}


def _twin(case: Case, real: str, quantized: str, key: str) -> Case:
    network = [
        Layer("input", "x", 0, dtype=real, shape=(2, 4)),
        Layer("constant", "s", 0, dtype=real, shape=(), value=1),
        Layer("quantize", "q", 0, input="x", scale="s", to=quantized),
        Layer("dequantize", "y", 0, input="q", scale="s", to=real),
    ]
    return replace(
        case,
        id=f"{case.id}::twin:{key}",
        network=network,
        outputs=["y"],
        inputs={"x": [[0, 1, 2, 3], [-1, -2, -3, -4]]},
        expect=Expectation("observe"),
        documented=None,
        overrides=[],
        requires=[],
        params={},
        raw={"twin": key},
    )


class TwinProbe:
    """Tries each valid twin of a case once per (type pair) on one backend, remembering the answer.

    `attempt(twin)` must raise QdqError when the backend refuses the twin; the first refusal becomes the skip reason.
    """

    def __init__(self, backend_name: str, version: str | None, attempt):
        self.backend_name, self.version, self.attempt = backend_name, version, attempt
        self.seen: dict[str, str | None] = {}

    def skip_reason(self, case: Case, where: str = "") -> str | None:
        from harness.cases.errors import QdqError

        expect, _ = case.expectation_for(self.backend_name.split()[0], self.version)
        if expect.kind == "error" and expect.category in FEATURE_CATEGORIES:
            return None  # the case is about that very feature: its refusal is the verdict, not a skip
        for key, twin in valid_twins(case).items():
            if key not in self.seen:
                try:
                    self.attempt(twin)
                    self.seen[key] = None
                except QdqError as exc:
                    self.seen[key] = (
                        f"{self.backend_name} {self.version} cannot run Q/DQ {key}{where} even in a "
                        f"valid twin: {exc.native.splitlines()[0]}"
                    )
            if self.seen[key]:
                return self.seen[key]
        return None

"""What the ONNX backends share: their base class (the run configuration's opset checked once, against what the
translator can write). Importing it imports no onnx."""

from __future__ import annotations

from harness.engine.backend import Backend
from harness.engine.options import BackendOption
from harness.cases.errors import categorize as shared_categorize


def categorizer(patterns: list[tuple[str, str]]):
    """A backend's `categorize(message, phase)`: its own (pattern, category) table, first match wins; otherwise a
    build or runtime failure."""

    def categorize(message: str, phase: str) -> str:
        return shared_categorize(message, patterns, "build-failed" if phase == "build" else "runtime-failed")

    return categorize


# The options of the ONNX family's backends (and of `tensorrt-onnx`, which parses the same exported model): one rule,
# plugins/onnx/export.opset_for, turns them into the opset of a run and of a repro script alike.
OPTIONS = [
    BackendOption(
        "opset",
        type="int",
        metavar="N",
        help="ONNX opset of the exported models (13, 17, 19, 21, 23; default: the lowest that expresses each case)",
    )
]


class OnnxBackend(Backend):
    """A backend that runs the case's exported ONNX model."""

    def configure(self, config) -> None:
        """Refuses an opset the translator cannot write: a usage error of the run, said once, before any case."""
        if config.option("opset") is not None and self.availability().available:
            from plugins.onnx.export import opset_problem

            problem = opset_problem(config.option("opset"))
            if problem:
                raise ValueError(problem)
        super().configure(config)

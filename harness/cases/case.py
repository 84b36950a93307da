"""What a loaded case is: plain data, built by `caseload` and read by backends, the verdict and the reports."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from harness.cases import dtypes
from harness.cases.model import ModelFile

COMPUTE_OPS = ("conv", "matmul", "add", "relu", "pool", "concat")


@dataclass(frozen=True)
class Layer:
    """One INetworkDefinition call: input, constant, cast, quantize, dequantize, or a compute layer next to them."""

    op: str
    name: str
    line: int
    input: str | None = None
    scale: str | None = None
    zero_point: str | None = None
    axis: int | None = None  # None: never set (TensorRT's default, -1)
    to: str | None = None  # output type of cast/quantize/dequantize
    dtype: str | None = None  # type of an input or constant
    shape: tuple[int, ...] | None = None
    value: Any = None  # data spec of a constant
    # Compute layers next to Q/DQ (conv, matmul, add, relu, pool, concat): their further operands and attributes.
    inputs: tuple[str, ...] = ()  # matmul/add: (a, b); concat: all of them
    weight: str | None = None  # conv
    bias: str | None = None  # conv
    attrs: tuple[tuple[str, Any], ...] = ()  # stride, padding, groups, dilation, kernel, kind (sorted items)

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)

    @property
    def compute(self) -> bool:
        return self.op in COMPUTE_OPS

    @property
    def operands(self) -> list[str]:
        named = [t for t in (self.input, self.weight, self.bias, self.scale, self.zero_point) if t is not None]
        return named + [t for t in self.inputs if t not in named]

    @property
    def output_type(self) -> str | None:
        """The type of the tensor this layer produces (defaults as in TensorRT's Python API); None for a compute
        layer, whose type is its first operand's (NetworkInfo.dtype follows it)."""
        if self.compute:
            return None
        if self.op in ("input", "constant"):
            return dtypes.dtype(self.dtype or "float32").name
        if self.op == "quantize":
            return dtypes.dtype(self.to or "int8").name
        if self.op == "dequantize":
            return dtypes.dtype(self.to or "float32").name
        return dtypes.dtype(self.to).name


@dataclass(frozen=True)
class Tolerance:
    kind: str = "exact"  # "exact" | "close" (atol/rtol) | "steps"
    atol: float = 0.0
    rtol: float = 0.0
    steps: int = 0

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact"
        if self.kind == "steps":
            return f"within {self.steps} quantization step(s)"
        return f"atol={self.atol:g}, rtol={self.rtol:g}"


@dataclass(frozen=True)
class Expectation:
    kind: str  # "values" | "error" | "reference" | "observe"
    values: dict[str, Any] = field(default_factory=dict)  # output name -> data spec
    tolerance: Tolerance = Tolerance()
    category: str | None = None
    message: str | None = None  # regular expression searched in the native message

    def describe(self) -> str:
        if self.kind == "values":
            return f"values ({self.tolerance.describe()})"
        if self.kind == "error":
            return f"error {self.category}" + (f" matching /{self.message}/" if self.message else "")
        if self.kind == "reference" and self.tolerance.kind != "exact":
            return f"reference ({self.tolerance.describe()})"
        return self.kind


@dataclass(frozen=True)
class Selector:
    """Which backend (and version) an override or requirement applies to."""

    backends: tuple[str, ...]
    version: str | None

    def matches_backend(self, backend: str) -> bool:
        return backend in self.backends

    def matches(self, backend: str, version: str | None) -> bool:
        if not self.matches_backend(backend):
            return False
        if not self.version:
            return True
        if version is None:
            return False
        try:
            return Version(version) in SpecifierSet(self.version)
        except InvalidVersion:
            return False


@dataclass(frozen=True)
class Override:
    selector: Selector
    expect: Expectation
    reason: str
    link: str | None
    line: int
    # "semantics": a legitimate difference of meaning (ONNX defines division, TensorRT a reciprocal product);
    # "bug": the backend breaks its own specification (the reason cites the thread or the measurement).
    kind: str = "semantics"


@dataclass(frozen=True)
class Requirement:
    selector: Selector
    reason: str


@dataclass(frozen=True)
class Documented:
    values: dict[str, Any]
    tolerance: Tolerance
    reason: str
    link: str | None
    selector: Selector | None = None  # None: the document speaks for every backend

    def applies(self, backend: str, version: str | None) -> bool:
        return self.selector is None or self.selector.matches(backend, version)


@dataclass
class Case:
    id: str
    file: Path
    root: Path
    line: int
    title: str
    source: dict
    tags: list[str]
    severity: str
    tier: str
    params: dict[str, Any]
    network: list[Layer]
    outputs: list[str]
    inputs: dict[str, Any]
    expect: Expectation
    documented: Documented | None
    overrides: list[Override]
    requires: list[Requirement]
    target: dict
    raw: dict  # the expanded case as written (after matrix substitution), for hashing and reports
    runs_quantized: list[str] = field(default_factory=list)  # layers an engine must run in INT8/FP8/INT4/FP4
    interpretation: dict = field(default_factory=dict)  # Q/DQ layer -> {to, axis} an ONNX parser must read
    file_hash: str = ""  # sha256 (16 hex digits) of the whole case file's bytes
    model: "ModelFile | None" = None  # a whole model file the case runs instead of layers (harness/cases/model.py)

    @property
    def layers(self) -> dict[str, Layer]:
        return {layer.name: layer for layer in self.network}

    @cached_property
    def content_hash(self) -> str:
        """Stable across runs and machines: changes only when the case's own content changes."""
        text = json.dumps(self.raw, sort_keys=True, default=str) + (self.model.sha256 if self.model else "")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def expectation_for(self, backend: str, version: str | None) -> tuple[Expectation, Override | None]:
        """The expectation that holds on this backend: the first matching override, else the case's own."""
        for override in self.overrides:
            if override.selector.matches(backend, version):
                return override.expect, override
        return self.expect, None

    def unmet_requirement(self, backend: str, version: str | None) -> Requirement | None:
        for requirement in self.requires:
            if requirement.selector.matches_backend(backend) and not requirement.selector.matches(backend, version):
                return requirement
        return None

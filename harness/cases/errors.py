"""The shared vocabulary of error categories. Every backend maps its native errors onto one of these and keeps
the native message, so a case can say `error: {category: invalid-axis}` once for all backends."""

from __future__ import annotations

CATEGORIES: dict[str, str] = {
    "invalid-axis": "the quantization axis is out of range, or unset where it is needed",
    "scale-shape-mismatch": "the scale's shape fits neither per-tensor, per-channel along the axis, nor blocks",
    "scale-not-positive": "a scale coefficient is zero, negative or NaN",
    "scale-not-constant": "the scale is not a build-time constant",
    "zero-point-nonzero": "a zero point holds a non-zero coefficient (only symmetric quantization is supported)",
    "zero-point-shape-mismatch": "the zero point's shape differs from the scale's",
    "zero-point-not-constant": "the zero point is not a build-time constant",
    "unsupported-type": "an input, scale, zero point or output type the layer does not accept",
    "unsupported-on-target": "the type or feature is valid but not on this target (GPU, compute capability, EP)",
    "per-channel-activation": "per-channel quantization of an activation rather than a constant weight",
    "scalar-input": "the quantized input is a scalar (rank 0)",
    "block-shape-invalid": "a block-quantization scale whose block layout is not allowed",
    "volume-limit": "a tensor holds more than 2^31-1 elements",
    "sub-byte-odd-count": "a 2- or 4-bit tensor with an odd element count or last dimension (packing needs pairs)",
    "interpretation-mismatch": "a model parser read a Q/DQ node otherwise than the model's format defines it (type, axis, block)",
    "build-failed": "building the network or model failed for another reason",
    "runtime-failed": "running the built network or model failed",
}


def categorize(text: str, patterns: list[tuple[str, str]], default: str) -> str:
    """The category of the first line of `text` that a (regex, category) pattern matches: with several errors in a
    log, the first is the cause and later ones its consequences."""
    import re

    for line in text.splitlines() or [text]:
        for pattern, category in patterns:
            if re.search(pattern, line):
                return category
    return default


class QdqError(Exception):
    """A backend's refusal of a case, in the shared vocabulary, with the backend's own words."""

    def __init__(self, category: str, message: str, *, native: str | None = None, phase: str = "build"):
        if category not in CATEGORIES:
            raise ValueError(f"unknown error category {category!r}")
        super().__init__(f"{category}: {message}")
        self.category = category
        self.message = message
        self.native = native if native is not None else message
        self.phase = phase  # "build" or "run"

    def as_dict(self) -> dict:
        return {"category": self.category, "message": self.message, "native": self.native, "phase": self.phase}


class BuiltNotRun(Exception):
    """The backend built the case (a real build verdict) but cannot run it here, e.g. no GPU: values are a skip."""

    def __init__(self, reason: str, kind: str = "no-gpu"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # the skip kind (harness/engine/skips.py): no-gpu, or unsupported-gpu

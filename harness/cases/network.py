"""Static facts about a case's network, shared by backends and the verdict: tensor shapes and types, which tensors
are build-time constants, and how a scale maps onto its input (per-tensor, per-channel, block)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.cases import data as data_mod
from harness.cases.case import Case, Layer
from harness.cases.shapes import infer_shape


@dataclass(frozen=True)
class Granularity:
    kind: str  # "per-tensor" | "per-channel" | "block"
    axis: int | None = None  # per-channel axis, or the blocked axis
    block: int | None = None  # block size along the blocked axis

    def compact(self, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The scale shaped to broadcast against a tensor of `shape` without being materialised (a block scale is
        repeated: its blocks must line up element by element)."""
        if self.kind == "per-tensor":
            return scale.reshape(())
        if self.kind == "per-channel":
            view = [1] * len(shape)
            view[self.axis] = shape[self.axis]
            return scale.reshape(view)
        return np.repeat(scale, self.block, axis=self.axis)

    def expand(self, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The scale (or zero point) broadcast to one coefficient per element of a tensor of `shape`."""
        if self.kind == "per-tensor":
            return np.broadcast_to(scale.reshape(()), shape)
        if self.kind == "per-channel":
            view = [1] * len(shape)
            view[self.axis] = shape[self.axis]
            return np.broadcast_to(scale.reshape(view), shape)
        return np.repeat(scale, self.block, axis=self.axis)


class GranularityError(ValueError):
    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category


def granularity(scale_shape: tuple[int, ...], input_shape: tuple[int, ...], axis: int | None) -> Granularity:
    """How TensorRT's documented rules read a scale's shape; raises GranularityError(category, message).

    One coefficient (scalar or shape (1,)) is per-tensor whatever the axis (IDequantizeLayer::setAxis: "ignored if
    the scale tensor has exactly one coefficient"). A 1-D scale is per-channel along `axis`, which must be set and
    in range. A scale of the input's rank is block quantization: exactly one dimension blocked, one of the last
    two, dividing the input's extent (NvInfer.h 10.13+: "the last or second to last dimension").
    """
    rank = len(input_shape)
    if math.prod(scale_shape) == 1 and len(scale_shape) <= 1:
        return Granularity("per-tensor")
    if len(scale_shape) == 1:
        if axis is None:
            raise GranularityError(
                "invalid-axis", f"a per-channel scale of shape {list(scale_shape)} needs `axis`, which is not set"
            )
        if not 0 <= axis < rank:
            raise GranularityError("invalid-axis", f"axis {axis} is out of range for an input of rank {rank}")
        if scale_shape[0] != input_shape[axis]:
            raise GranularityError(
                "scale-shape-mismatch",
                f"per-channel scale has {scale_shape[0]} coefficients, "
                f"axis {axis} of the input {list(input_shape)} has {input_shape[axis]}",
            )
        return Granularity("per-channel", axis=axis)
    if len(scale_shape) == rank and rank >= 2:
        blocked = [d for d in range(rank) if scale_shape[d] != input_shape[d]]
        if len(blocked) != 1:
            raise GranularityError(
                "block-shape-invalid",
                f"a block scale {list(scale_shape)} for input {list(input_shape)} "
                f"must differ from it in exactly one dimension, not {len(blocked)}",
            )
        d = blocked[0]
        if d < rank - 2:
            raise GranularityError(
                "block-shape-invalid", f"the blocked dimension {d} is not one of the last two of rank {rank}"
            )
        if scale_shape[d] == 0 or input_shape[d] % scale_shape[d]:
            raise GranularityError(
                "block-shape-invalid",
                f"dimension {d}: {input_shape[d]} elements do not split into {scale_shape[d]} equal blocks",
            )
        return Granularity("block", axis=d, block=input_shape[d] // scale_shape[d])
    raise GranularityError(
        "scale-shape-mismatch",
        f"a scale of shape {list(scale_shape)} fits neither per-tensor, "
        f"per-channel (1-D) nor block (rank {rank}) quantization of {list(input_shape)}",
    )


class NetworkInfo:
    """Shapes, types and constant-ness of every tensor of a case, computed without materialising inputs."""

    def __init__(self, case: Case):
        self.case = case
        self.layers = case.layers
        self.shapes: dict[str, tuple[int, ...]] = {}
        for layer in case.network:
            if layer.op == "input":
                self.shapes[layer.name] = tuple(layer.shape)
            elif layer.op == "constant":
                self.shapes[layer.name] = (
                    tuple(layer.shape) if layer.shape is not None else data_mod.spec_shape(layer.value)
                )
            elif layer.compute:
                self.shapes[layer.name] = infer_shape(layer, self.shapes)
            else:
                self.shapes[layer.name] = self.shapes[layer.input]

    def dtype(self, name: str) -> str:
        layer = self.layers[name]
        while layer.compute:  # a compute layer keeps its first operand's type
            layer = self.layers[layer.operands[0]]
        return layer.output_type

    def constant_root(self, name: str) -> Layer | None:
        """The constant layer a tensor comes from, through casts only; None when it depends on anything else."""
        layer = self.layers[name]
        while layer.op == "cast":
            layer = self.layers[layer.input]
        return layer if layer.op == "constant" else None

    def constant_value(self, name: str) -> np.ndarray:
        """A constant-rooted tensor's value (constant data, then the casts on the way)."""
        chain = []
        layer = self.layers[name]
        while layer.op == "cast":
            chain.append(layer)
            layer = self.layers[layer.input]
        value = data_mod.materialise(
            layer.value, self.shapes[layer.name], layer.output_type, self.case.file, self.case.root
        )
        from harness.cases.dtypes import dtype  # local: keeps this module's imports light

        for cast in reversed(chain):
            value = cast_array(value, dtype(cast.output_type).np_type)
        return value

    def scale_granularity(self, layer: Layer) -> Granularity:
        return granularity(self.shapes[layer.scale], self.shapes[layer.input], layer.axis)

    def step(self, output: str) -> np.ndarray | None:
        """One quantization step of an output, per element: the dequantize scale, or 1 code for a quantized tensor;
        None when unknown (an output of a whole model file is no layer of the case)."""
        layer = self.layers.get(output)
        if layer is None:
            return None
        if layer.op == "quantize":
            return np.ones(self.shapes[output])
        if layer.op != "dequantize" or self.constant_root(layer.scale) is None:
            return None
        try:
            g = self.scale_granularity(layer)
            scale = self.constant_value(layer.scale).astype(np.float64)
            return np.abs(g.expand(scale, self.shapes[output]))
        except (GranularityError, data_mod.DataError, ValueError):
            return None


def cast_array(value: np.ndarray, np_type: np.dtype) -> np.ndarray:
    """A cast as the reference models it: to integers rounds to nearest even and saturates; floats round once."""
    np_type = np.dtype(np_type)
    if np.issubdtype(np_type, np.integer) or np_type.name == "int4":
        import ml_dtypes

        info = ml_dtypes.iinfo(np_type) if np_type.name == "int4" else np.iinfo(np_type)
        wide = np.nan_to_num(value.astype(np.float64), nan=0.0)
        return np.clip(np.rint(wide), info.min, info.max).astype(np_type)
    return value.astype(np_type)

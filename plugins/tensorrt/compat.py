"""The one compatibility layer between cases and the TensorRT Python API of every supported line (8.6, 10.x, 11.x)
and TensorRT-RTX (whose network API is TensorRT 11.x's).

Every branch is chosen from the module's own features, never from version strings (measured per version from the
binding wheels, docs/tensorrt-versions.md):
- `IQuantizeLayer.to_type` exists from 10.0: `add_quantize/add_dequantize` take an output type (optional in 10.x,
  required from 11.0); 8.6 has only the 2-argument form (INT8 out, FP32 in/out).
- `NetworkDefinitionCreationFlag.EXPLICIT_BATCH` is needed on 8.6, ignored on 10.x, gone on 11.x.
- `NetworkDefinitionCreationFlag.STRONGLY_TYPED` exists from 10.0, is always on (and deprecated) from 11.0.
- `BuilderFlag.INT8/FP8/INT4/FP4/FP16/BF16`: precision flags of weakly typed networks, removed in 11.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

from harness.cases.errors import QdqError

# case type -> DataType member name
DATA_TYPES = {
    "float32": "FLOAT",
    "float16": "HALF",
    "bfloat16": "BF16",
    "int8": "INT8",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "fp8": "FP8",
    "int4": "INT4",
    "fp4": "FP4",
}
# case type -> builder flag a weakly typed network needs to allow it
PRECISION_FLAGS = {"int8": "INT8", "fp8": "FP8", "int4": "INT4", "fp4": "FP4", "float16": "FP16", "bfloat16": "BF16"}


@dataclass
class TrtApi:
    trt: ModuleType
    strongly_typed: bool = False  # ask for a strongly typed network where the version offers the choice
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def version(self) -> str:
        return self.trt.__version__

    @property
    def takes_output_type(self) -> bool:
        """10.0+: Q/DQ layers have `to_type` and `add_quantize(input, scale, output_type)`."""
        return hasattr(self.trt.IQuantizeLayer, "to_type")

    @property
    def always_strongly_typed(self) -> bool:
        """11.x (and TensorRT-RTX): precision builder flags are gone, strong typing is always on."""
        return not hasattr(self.trt.BuilderFlag, "INT8")

    @property
    def typing(self) -> str:
        if self.always_strongly_typed:
            return "strong"
        if self.strongly_typed and hasattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            return "strong"
        return "weak"

    def dtype(self, name: str):
        if name not in DATA_TYPES:
            raise QdqError("unsupported-type", f"TensorRT has no DataType for {name}")
        member = getattr(self.trt.DataType, DATA_TYPES[name], None)
        if member is None:
            raise QdqError("unsupported-type", f"TensorRT {self.version} has no DataType.{DATA_TYPES[name]} ({name})")
        return member

    def network_flags(self) -> int:
        flags = 0
        creation = self.trt.NetworkDefinitionCreationFlag
        if not self.takes_output_type and hasattr(creation, "EXPLICIT_BATCH"):
            flags |= 1 << int(creation.EXPLICIT_BATCH)  # 8.x: Q/DQ need an explicit-batch network
        if self.typing == "strong" and not self.always_strongly_typed:
            flags |= 1 << int(creation.STRONGLY_TYPED)
        return flags

    def precision_flags(self, types: set[str]) -> list:
        """Builder flags a weakly typed network needs for these types (none under strong typing)."""
        if self.typing == "strong":
            return []
        wanted = {"INT8"} | {PRECISION_FLAGS[t] for t in types if t in PRECISION_FLAGS}
        flags = []
        for name in sorted(wanted):
            flag = getattr(self.trt.BuilderFlag, name, None)
            if flag is None:
                raise QdqError("unsupported-type", f"TensorRT {self.version} has no BuilderFlag.{name}")
            flags.append(flag)
        return flags

    def add_quantize(self, network, x, scale, to: str):
        if self.takes_output_type:
            return network.add_quantize(x, scale, self.dtype(to))
        if to != "int8":
            raise QdqError(
                "unsupported-type", f"TensorRT {self.version} quantizes to INT8 only (2-argument add_quantize)"
            )
        return network.add_quantize(x, scale)

    def add_dequantize(self, network, q, scale, to: str):
        if self.takes_output_type:
            return network.add_dequantize(q, scale, self.dtype(to))
        if to != "float32":
            raise QdqError(
                "unsupported-type", f"TensorRT {self.version} dequantizes to FP32 only (2-argument add_dequantize)"
            )
        return network.add_dequantize(q, scale)

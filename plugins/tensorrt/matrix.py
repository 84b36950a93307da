"""What `qdq matrix --tensorrt-rtx VERSION` and `--tensorrt VERSION` mean (entry point group `qdq_harness.matrix`).

TensorRT-RTX installs from the package index and its real builder runs on a CPU: real build verdicts per version.
The full TensorRT does not install from the public index (its packages fetch NVIDIA's wheels at install time), so
its environment holds that version's Python bindings, runs that version's API-surface check, and its GPU backends
skip with the reason; on a machine with NVIDIA's index and a GPU, install `tensorrt==VERSION` there instead.
"""


def _tensorrt_bindings(version: str) -> list[str]:
    package = "tensorrt-bindings" if version.startswith("8.") else "tensorrt-cu12-bindings"
    return [f"{package}=={version}"]


MATRIX = {
    "tensorrt-rtx": {
        "about": "TensorRT-RTX VERSION's real builder (build verdicts on a CPU; values need an RTX-class GPU)",
        "requirements": ["tensorrt-rtx-cu12=={version}", "cuda-python>=12.9"],
        "backends": ["numpy", "tensorrt-rtx"],
    },
    "tensorrt": {
        "about": "TensorRT VERSION: its bindings and API-surface check here; the GPU backends where TensorRT installs",
        "requirements": _tensorrt_bindings,
        "backends": ["numpy", "tensorrt", "tensorrt-strongly-typed", "tensorrt-onnx"],
        "check": [
            "{python}",
            "-m",
            "pytest",
            "tests/test_trt_api_surface.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "{version}",
        ],
    },
}

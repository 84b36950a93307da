"""What `qdq matrix --onnxruntime VERSION` means (entry point group `qdq_harness.matrix`)."""

MATRIX = {
    "onnxruntime": {
        "about": "ONNX Runtime's CPU provider at VERSION (with the newest onnx)",
        "requirements": ["onnxruntime=={version}", "onnx"],
        "backends": ["numpy", "onnxruntime", "onnx-reference"],
    },
}

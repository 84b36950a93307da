"""The TensorRT backend family: the compatibility layer (8.6, 10.x, 11.x), the network builder, the GPU runner,
the `tensorrt`, `tensorrt-strongly-typed`, `tensorrt-onnx` and `tensorrt-rtx` backends, and their repro scripts."""

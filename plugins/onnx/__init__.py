"""The ONNX backend family: the one case -> ONNX translator, `onnxruntime` and `onnx-reference`, their repro
scripts, and the `qdq export` command. Importing this package imports no onnx: each module does so when used."""

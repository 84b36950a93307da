"""The `numpy` backend family: an executable model of TensorRT's documented Q/DQ contract, and its repro script."""

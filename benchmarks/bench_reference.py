"""Throughput of the numpy reference on large tensors (a benchmark, not a test: run it by hand).

python benchmarks/bench_reference.py
"""

import time

import numpy as np

from plugins.numpy.backend import dequantize, quantize


def main() -> None:
    rng = np.random.default_rng(0)
    for n in (1 << 20, 1 << 24):
        x = rng.normal(0, 4, n).astype(np.float32)
        s = np.full(n, np.float32(1 / 32))
        for to in ("int8", "int4", "fp8", "fp4"):
            start = time.perf_counter()
            y = dequantize(quantize(x, s, to), s, "float32")
            dt = time.perf_counter() - start
            print(
                f"{to:5s} {n:>9d} elements: {dt * 1e3:8.1f} ms  ({n / dt / 1e6:7.1f} M elements/s)  sum={float(y.sum()):.3f}"
            )


if __name__ == "__main__":
    main()

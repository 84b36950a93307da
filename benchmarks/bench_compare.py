"""`qdq compare` of two 10,000-case bundles (3 backends + cross-backend each): goal under 2 s on a 2-core machine.
A benchmark, not a test: run it by hand.

    python benchmarks/bench_compare.py

The second bundle differs from the first where a real upgrade would: 20 outputs moved by one step (read from
their .npz), 10 passes turned fails, 5 cases edited (with identical results: no change to report). Everything
else is compared by hash only.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.results import bundlediff
from harness.results.bundle import arrays_hash, save_outputs

CASES, BACKENDS = 10_000, ("numpy", "onnxruntime", "onnx-reference")


def make(folder: Path, moved: set[int], failed: set[int], edited: set[int]) -> None:
    records, cases = [], {}
    y = np.arange(60, dtype=np.float32)
    for i in range(CASES):
        case_id = f"gen/case-{i:05d}"
        cases[case_id] = {"title": "t", "source": {}, "content_hash": f"{i + (10**6 if i in edited else 0):016x}"}
        for backend in BACKENDS:
            out = y + 1 if (i in moved and backend == "numpy") else y
            file = None
            if 100 <= i < 120:  # stored where outputs differ: the only ones compare reads
                file = save_outputs(folder, case_id, backend, {"y": out}).relative_to(folder).as_posix()
            records.append(
                {
                    "nodeid": f"{case_id}[{backend}]",
                    "case_id": case_id,
                    "backend": backend,
                    "status": "fail" if (i in failed and backend == "numpy") else "pass",
                    "kind": "pass",
                    "reason": "",
                    "inputs_hash": "0" * 16,
                    "outputs_hash": arrays_hash({"y": out}),
                    "outputs_file": file,
                    "output_steps": {"y": 1.0},
                }
            )
        records.append(
            {
                "nodeid": f"{case_id}[cross-backend]",
                "case_id": case_id,
                "backend": "cross-backend",
                "status": "pass",
                "kind": "pass",
                "reason": "",
            }
        )
    (folder / "results.json").write_text(json.dumps({"partial": False, "records": records, "cases": cases}))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        a.mkdir()
        b.mkdir()
        make(a, moved=set(), failed=set(), edited=set())
        make(b, moved=set(range(100, 120)), failed=set(range(200, 210)), edited=set(range(300, 305)))
        start = time.perf_counter()
        comparison = bundlediff.compare(bundlediff.load(a), bundlediff.load(b))
        seconds = time.perf_counter() - start
        print(f"compare of 2 x {CASES} cases ({4 * CASES} records each): {seconds:.2f} s; {comparison.counts()}")


if __name__ == "__main__":
    main()

"""The fingerprint of a bundle: what must not change when the harness gets faster (statuses, verdict kinds, the
hashes of every input and output, every cross-backend diff). `python tests/golden_fingerprint.py BUNDLE OUT` writes
one; tests/test_same_results.py compares today's run with tests/golden/suite-fingerprint.json, which was written
from the run of the commit before the speed work (the commit is named inside)."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

PACKAGES = ("numpy", "ml_dtypes", "onnx", "onnxruntime")


def fingerprint(doc: dict) -> dict:
    records = {
        f"{r['case_id']} [{r.get('backend')}]": [r["status"], r["kind"], r.get("inputs_hash"), r.get("outputs_hash")]
        for r in doc["records"]
    }
    diffs = {
        f"{d['case_id']} {d['output']} {'/'.join(d['backends'])}": [d["agree"], d["differing"], d["max_abs"]]
        for d in doc["diffs"]
    }
    return {"records": dict(sorted(records.items())), "diffs": dict(sorted(diffs.items()))}


def main() -> None:
    bundle, out, commit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    doc = json.loads((bundle / "results.json").read_text())
    data = {"commit": commit, "versions": {p: version(p) for p in PACKAGES}, **fingerprint(doc)}
    out.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""qdq-harness: a conformance harness for TensorRT's Quantize/Dequantize layers.

Where things live:
  harness/caseload.py   a YAML case file becomes `Case` objects (schema, then semantic checks)
  harness/backend.py    the one interface every backend implements, and entry-point discovery
  harness/verdict.py    a backend's outcome judged against the case's expectation
  harness/pytest_plugin.py  the engine: one pytest item per (case, backend)
  harness/bundle.py     the results bundle (results.json + outputs/*.npz)
  harness/cli.py        the `qdq` command, a thin veneer over pytest
"""

__version__ = "0.1.0"

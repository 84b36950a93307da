"""qdq-harness: a conformance harness for TensorRT's Quantize/Dequantize layers.

The engine (this package) knows no backend; backends are packages under plugins/ found through entry points.
Where things live:
  harness/cases/load.py   a YAML case file becomes `Case` objects (yamlread.py reads it safely, limits.py bounds it)
  harness/engine/backend.py    the one interface every backend implements, and entry-point discovery
  harness/engine/run.py        where a backend runs: the one path from (case, backend, RunConfig) to a Record
  harness/engine/verdict.py    where a verdict is made: a backend's outcome judged against the case's expectation
  harness/engine/crossdiff.py  every pair of backends compared per case, from the stored outputs (ties named)
  harness/pytest_plugin.py  pytest's side: collection, items, records to the bundle, the diff at the end
  harness/results/bundle.py     the results bundle (results.json, journal.jsonl, outputs/)
  harness/report/allure.py     Allure labels, attachments, categories and the HTML report; summary.py the matrix
  harness/engine/isolation.py  persistent worker processes for backends that may crash or hang
  harness/cli/main.py        the `qdq` command, a thin veneer over pytest
  plugins/numpy, plugins/onnx, plugins/tensorrt   the shipped backend families
"""

__version__ = "0.1.0"

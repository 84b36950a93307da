"""qdq-harness: a conformance harness for TensorRT's Quantize/Dequantize layers.

Where things live:
  harness/caseload.py   a YAML case file becomes `Case` objects (schema, then semantic checks)
  harness/backend.py    the one interface every backend implements, and entry-point discovery
  harness/verdict.py    a backend's outcome judged against the case's expectation
  harness/pytest_plugin.py  the engine: one pytest item per (case, backend)
  harness/crossdiff.py  every pair of backends compared per case (ties and near-ties named)
  harness/bundle.py     the results bundle (results.json + outputs/*.npz)
  harness/report.py     Allure labels, attachments, categories and the HTML report; summary.py the matrix
  harness/onnx_export.py  the one case -> ONNX translator; trt_compat.py / trt_network.py the TensorRT side
  harness/isolation.py  persistent worker processes for backends that may crash or hang
  harness/cli.py        the `qdq` command, a thin veneer over pytest
  plugins/              one module per backend
"""

__version__ = "0.1.0"

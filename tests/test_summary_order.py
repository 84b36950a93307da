"""summary.html and summary.md open with what failed, then the declared deviations with their reasons, then the
skips grouped by kind (one line where a matrix repeats a reason), then every case; a deviation's reason reaches its
Allure page."""

from __future__ import annotations

import json

from harness.report import summary
from harness.report.html import mark_declared_deviations

SKIP_REASON = "tensorrt unavailable: module missing: tensorrt (the package index holds only stubs)"


def _doc() -> dict:
    records = [
        {
            "case_id": "a",
            "backend": "numpy",
            "status": "fail",
            "kind": "numeric-mismatch",
            "reason": "got 3, expected 4",
        },
        {
            "case_id": "b",
            "backend": "onnxruntime",
            "status": "xfail",
            "kind": "declared-deviation",
            "reason": "ONNX divides x / s; x = 30 gives 64",
        },
    ]
    records += [
        {
            "case_id": c,
            "backend": "tensorrt",
            "status": "skip",
            "kind": "skipped",
            "reason": SKIP_REASON,
            "skip_kind": "not-installed",
        }
        for c in ("a", "b", "c")
    ]
    records.append({"case_id": "c", "backend": "numpy", "status": "pass", "kind": "pass", "reason": "as expected"})
    return {
        "records": records,
        "started": "now",
        "partial": False,
        "backends": {"numpy": {"version": "1", "available": True, "reason": ""}},
    }


def test_the_html_leads_with_failures_then_deviations_then_grouped_skips_then_the_matrix():
    page = summary.to_html(_doc())
    where = [page.index(h) for h in ("Not passing (1)", "Declared deviations (1)", "Skipped, by kind", "Every case")]
    assert where == sorted(where)
    assert page.index("got 3, expected 4") < where[1]
    assert where[1] < page.index("ONNX divides x / s") < where[2]
    grouped = page[where[2] : where[3]]
    assert grouped.count("backend not installed") == 1 and "<td>3</td>" in grouped
    matrix = page[where[3] :]
    assert 'class="why">' + SKIP_REASON not in matrix  # the reason is not repeated in every skip cell


def test_the_markdown_has_the_same_order_and_every_section_it_points_to():
    text = summary.markdown(_doc())
    where = [
        text.index(h) for h in ("## Not passing", "## Declared deviations", "## Skipped, by kind", "## Every case")
    ]
    assert where == sorted(where)
    assert "tensorrt x3" in text
    assert "see below" not in text


def test_a_declared_deviation_s_reason_is_on_its_allure_page(tmp_path):
    result = {
        "status": "skipped",
        "statusDetails": {
            "message": "XFAIL DECLARED-DEVIATION: ONNX divides x / s [the "
            "contract does not hold]\n\n_pytest.outcomes.XFailed"
        },
    }
    (tmp_path / "1-result.json").write_text(json.dumps(result))
    assert mark_declared_deviations(tmp_path) == 1
    back = json.loads((tmp_path / "1-result.json").read_text())
    assert back["status"] == "unknown"
    assert back["description"].startswith("**DECLARED-DEVIATION**: ONNX divides x / s")
    assert mark_declared_deviations(tmp_path) == 0

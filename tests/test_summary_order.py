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


def test_a_declared_backend_bug_is_counted_and_shown_apart_from_a_difference_of_meaning(tmp_path):
    """Overrides say what they are: `kind: bug` (the backend breaks its own specification) is its own section, its
    own cell mark and its own count in `qdq coverage`; `semantics` (the default) stays a declared deviation."""
    from conftest import REPO, run_qdq

    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "k.yaml").write_text(
        "title: NaN and huge values to INT8\n"
        "source: {document: test}\n"
        "tags: [kinds]\n"
        "network:\n"
        "  - {op: input, name: x, dtype: float32, shape: [2]}\n"
        "  - {op: constant, name: s, dtype: float32, shape: [], value: 1}\n"
        "  - {op: quantize, name: q, input: x, scale: s, to: int8}\n"
        "outputs: [q]\n"
        "inputs: {x: [1e10, 1]}\n"
        "expect: {values: [127, 1]}\n"
        "overrides:\n"
        "  - {backend: onnx-reference, kind: bug, reason: 'turns 1e10 into -128', expect: {values: [-128, 1]}}\n"
        "  - {backend: onnxruntime, reason: 'a difference of meaning', expect: {values: [127, 1]}}\n"
    )
    out = tmp_path / "out"
    backends = ["--backend", "numpy", "--backend", "onnx-reference", "--backend", "onnxruntime"]
    run_qdq("run", str(cases), *backends, "--out", str(out), "--no-report", cwd=REPO)
    doc = json.loads((out / "results.json").read_text())
    by_backend = {r["backend"]: r for r in doc["records"]}
    assert by_backend["onnx-reference"]["status"] == "xfail" and by_backend["onnx-reference"]["override_kind"] == "bug"
    assert by_backend["onnxruntime"]["kind"] == "deviation-no-longer-observed"  # the declared one did not happen
    assert summary.cell_class(by_backend["onnx-reference"]) == "bug"
    text = summary.markdown(doc)
    assert text.index("## Declared backend bugs") < text.index("## Declared deviations")
    assert "turns 1e10 into -128" in text.split("## Declared backend bugs")[1].split("## Declared deviations")[0]
    row = next(line for line in summary.coverage(doc).splitlines() if line.startswith("| kinds |"))
    assert "1 bug" in row and "dev" not in row


def test_an_override_kind_other_than_semantics_or_bug_is_refused(tmp_path):
    from conftest import run_qdq

    bad = tmp_path / "cases" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text(
        "title: t\nsource: {document: test}\nnetwork:\n  - {op: input, name: x, dtype: float32, shape: [1]}\n"
        "outputs: [x]\ninputs: {x: [1]}\nexpect: {values: [1]}\n"
        "overrides:\n  - {backend: onnxruntime, kind: feature, reason: r, expect: observe}\n"
    )
    r = run_qdq("validate", str(bad))
    assert r.returncode != 0 and "bad.yaml" in (r.stdout + r.stderr) and "kind" in (r.stdout + r.stderr)

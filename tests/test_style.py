"""The code is linted and formatted by ruff (configured in pyproject.toml), in CI as here."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO

RUFF = shutil.which("ruff") or str(REPO / ".venv" / "bin" / "ruff")


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (REPO / ".venv" / "bin" / "ruff").exists(),
    reason="ruff is not installed (it is in the dev extra: pip install -e '.[dev]')",
)
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    done = subprocess.run([RUFF, *command, "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]

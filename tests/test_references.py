"""The repository carries its own evidence: every file path its texts name exists in it, and nothing points to
material outside it (a contributor has only the repository)."""

from __future__ import annotations

import re

from conftest import REPO

TEXTS = ["README.md", "docs", "cases", "harness", "plugins", "tests", "benchmarks", ".ci", ".github"]
PATH = re.compile(r"(?<![\w./-])((?:harness|plugins|tests|docs|cases|benchmarks|\.ci|\.github)/[\w./-]*\w)")
EXAMPLES = {"cases/your/file.yaml", "cases/docs/s1.yaml"}  # paths shown as the shape of an argument
OUTSIDE = re.compile(r"shared/(?:notes|docs)|\.\./shared")


def _texts():
    for top in TEXTS:
        path = REPO / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if f.suffix in (".py", ".md", ".yaml", ".yml", ".json", "") and "__pycache__" not in f.parts:
                yield f


def test_no_text_points_outside_the_repository():
    found = [
        f"{f.relative_to(REPO)}:{n}"
        for f in _texts()
        if f.name != "test_references.py"
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, found


def test_every_file_path_a_text_names_exists():
    missing = set()
    for f in _texts():
        for line in f.read_text(errors="replace").splitlines():
            for ref in PATH.findall(line):
                ref = ref.rstrip(".")
                # Case ids (`docs/s1-...`) and globs are not paths; a path with a suffix must exist.
                if "*" in ref or "<" in ref or not re.search(r"\.(py|md|yaml|yml|json|txt|sh|cjs)$", ref):
                    continue
                # Relative to the repository, the text's own folder, or the cases root (case files by their path).
                if ref not in EXAMPLES and not any((b / ref).exists() for b in (REPO, f.parent, REPO / "cases")):
                    missing.add(f"{f.relative_to(REPO)}: {ref}")
    assert not missing, sorted(missing)

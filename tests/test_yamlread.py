"""The single pass that reads a plain case file gives what the two passes give (values, every key's line, every
problem), and leaves everything else to them."""

from __future__ import annotations

import math

import pytest

from harness.cases import yamlread
from conftest import REPO

UNUSUAL = {
    "alias": "a: &x [1, 2]\nb: *x\n",
    "merge key": "base: &b {op: input}\nlayer:\n  <<: *b\n  name: x\n",
    "date": "when: 2024-05-01\n",
    "set": "s: !!set {a, b}\n",
    "binary": "b: !!binary aGVsbG8=\n",
    "explicit tag": "x: !!str 12\ny: !!float 1\n",
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "number key": "1: one\n",
    "null key": "~: x\n",
    "long number": "x: " + "1" * 250 + "\n",
    "deep": "x: " + "[" * 70 + "]" * 70 + "\n",
    "sexagesimal and hex": "a: 1:30\nb: 0x1F\nc: 1_000\nd: .inf\ne: -.NaN\nf: 0o17\ng: 017\n",
    "booleans and nulls": "a: yes\nb: Off\nc: ~\nd: null\ne:\n",
}


def both(path, monkeypatch):
    fast = yamlread.read(path)
    with monkeypatch.context() as m:
        m.setattr(yamlread, "_construct_plain", lambda *a: (_ for _ in ()).throw(yamlread._Unusual()))
        slow = yamlread.read(path)
    return fast, slow


def same(a, b) -> bool:
    """Equal, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_every_committed_and_every_bad_case_file_reads_the_same_both_ways(monkeypatch):
    files = sorted((REPO / "cases").rglob("*.yaml")) + sorted((REPO / "tests" / "bad_inputs").glob("*.yaml"))
    assert len(files) > 100
    for path in files:
        fast, slow = both(path, monkeypatch)
        assert same(fast.doc, slow.doc) and fast.lines == slow.lines and fast.problems == slow.problems, path


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_documents_read_the_same_both_ways(tmp_path, monkeypatch, name):
    path = tmp_path / "x.yaml"
    path.write_text(UNUSUAL[name])
    fast, slow = both(path, monkeypatch)
    assert same(fast.doc, slow.doc) and fast.lines == slow.lines and fast.problems == slow.problems


def test_the_single_pass_reads_what_it_can_and_its_lines_are_right(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("a: 1:30\nb: [0x1F, yes, ~]\nc:\n  d: 'e'\n")
    lines: dict = {}
    loader = yamlread._Loader(path.read_text())
    doc = yamlread._construct_plain(loader, loader.get_single_node(), lines)
    assert doc == {"a": 90, "b": [31, True, None], "c": {"d": "e"}}  # YAML 1.1: sexagesimal, hex, yes
    assert lines == {(): 1, ("a",): 1, ("b",): 2, ("b", 0): 2, ("b", 1): 2, ("b", 2): 2, ("c",): 3, ("c", "d"): 4}
    loader.dispose()

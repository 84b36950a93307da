"""The parse cache: an unchanged file gives the very cases a full read gives; any change, a damaged or foreign entry,
or an unwritable cache folder gives a full read, never a stale case or an error."""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pytest

from harness.cases import load as caseload

from harness.cases import yamlread
from harness.cases.load import check_file, iter_case_files
from harness.cases.parsecache import ParseCache

from conftest import REPO

CASE = """
title: t
source: {document: d}
network:
  - {op: input, name: x, dtype: float32, shape: [2]}
  - {op: constant, name: s, dtype: float32, shape: [], value: "1/4"}
  - {op: quantize, name: y, input: x, scale: s, to: int8}
outputs: [y]
inputs: {x: [1, 2]}
expect: {values: {y: [4, 8]}}
"""


@pytest.fixture
def cache(tmp_path):
    return ParseCache(tmp_path / "parsed.sqlite3")


def fill(cache, path, root):
    """One full read that keeps its entry, written."""
    result = check_file(path, root, cache)
    cache.flush()
    return result


def stored(cache, path) -> str | None:
    """The entry as the database holds it."""
    with sqlite3.connect(cache.database) as db:
        row = db.execute("SELECT entry FROM entries WHERE path = ?", (str(path),)).fetchone()
    return row[0] if row else None


def store(cache, path, text: str) -> None:
    with sqlite3.connect(cache.database) as db:
        db.execute("UPDATE entries SET entry = ? WHERE path = ?", (text, str(path)))


def no_yaml(monkeypatch):
    """From here on, any full read fails the test: what is loaded must come from the cache."""

    def refuse(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(yamlread, "read", refuse)


def age(path, seconds=60):
    """The file as if written a minute ago: its entry is then trusted by its stat alone (not racily clean)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_every_committed_case_comes_back_the_same_from_the_cache(cache, monkeypatch):
    files = list(iter_case_files([REPO / "cases"]))
    assert len(files) > 30
    fresh = {f: check_file(f, caseload.find_root(f)) for f in files}
    for f in files:
        check_file(f, caseload.find_root(f), cache)  # fills the cache
    cache.flush()
    no_yaml(monkeypatch)
    kept = 0
    for f in files:
        cases, errors = check_file(f, caseload.find_root(f), cache)
        assert not errors and not fresh[f][1]
        # repr covers every field: ids, params, each layer's line, overrides' lines, data specs, file hash
        assert [repr(c) for c in cases] == [repr(c) for c in fresh[f][0]], f
        kept += len(cases)
    assert kept == sum(len(c) for c, _ in fresh.values()) > 300


def test_a_matrix_and_a_case_list_keep_their_lines(cache, write_case, cases_dir, monkeypatch):
    path = write_case(
        "m/list.yaml",
        """
        source: {document: d}
        outputs: [y]
        inputs: {x: [1, 2]}
        cases:
          - name: a
            title: t
            network:
              - {op: input, name: x, dtype: float32, shape: [2]}
              - {op: constant, name: s, dtype: float32, shape: [], value: "${s}"}
              - {op: quantize, name: y, input: x, scale: s, to: int8}
            matrix: {s: [1, 0.5]}
            expect: reference
          - name: b
            title: t
            network:
              - {op: input, name: x, dtype: float32, shape: [2]}

              - {op: constant, name: s, dtype: float32, shape: [], value: 2}
              - {op: quantize, name: y, input: x, scale: s, to: int8}
            expect: reference
        """,
    )
    age(path)
    first, _ = fill(cache, path, cases_dir)
    no_yaml(monkeypatch)
    again, _ = check_file(path, cases_dir, cache)
    assert [c.id for c in again] == ["m/list::a::s=1", "m/list::a::s=0.5", "m/list::b"]
    assert [c.params for c in again] == [{"s": 1}, {"s": 0.5}, {}]
    assert [layer.line for layer in again[2].network] == [16, 18, 19]  # the blank line counts
    assert [repr(c) for c in again] == [repr(c) for c in first]


def test_an_edit_of_the_same_size_is_seen(cache, write_case, cases_dir):
    path = write_case("t/c.yaml", CASE)
    age(path)
    (case,) = fill(cache, path, cases_dir)[0]
    assert case.expect.values == {"y": [4, 8]}
    st = os.stat(path)
    path.write_text(path.read_text().replace("[4, 8]", "[4, 9]"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only the ctime tells
    (case,) = check_file(path, cases_dir, cache)[0]
    assert case.expect.values == {"y": [4, 9]}


@pytest.mark.parametrize("how", ["cp -p", "rsync -a"])
def test_a_file_replaced_while_read_never_leaves_the_old_content_cached(cache, write_case, cases_dir, monkeypatch, how):
    """A file replaced by one of the same size with its old mtime put back (`cp -p` writes in place, `rsync -a`
    renames a new file over it) between the read and the entry being kept: no later run may judge the old bytes."""
    path = write_case("t/c.yaml", CASE)
    age(path)
    old_mtime = os.stat(path).st_mtime_ns
    real_read = yamlread.read

    def read_then_replace(p):
        result = real_read(p)
        new_text = path.read_text().replace("[4, 8]", "[4, 9]")
        if how == "cp -p":
            path.write_text(new_text)
        else:
            fresh = path.with_name(".c.yaml.tmp")
            fresh.write_text(new_text)
            os.replace(fresh, path)
        os.utime(path, ns=(old_mtime, old_mtime))
        return result

    monkeypatch.setattr(yamlread, "read", read_then_replace)
    (case,) = fill(cache, path, cases_dir)[0]
    assert case.expect.values == {"y": [4, 8]}  # this run read the old bytes
    monkeypatch.setattr(yamlread, "read", real_read)
    for _ in range(2):  # the next runs judge what the file holds now
        (case,) = fill(cache, path, cases_dir)[0]
        assert case.expect.values == {"y": [4, 9]}


def test_an_old_mtime_put_back_does_not_make_a_new_file_trusted_by_stat(cache, write_case, cases_dir):
    """`cp -p` gives a file written now a mtime of long ago; its entry is still racy (ctime is now)."""
    path = write_case("t/c.yaml", CASE)
    age(path, 3600)
    fill(cache, path, cases_dir)
    assert json.loads(stored(cache, path))["racy"] is True


def test_a_racily_clean_entry_is_checked_by_content(cache, write_case, cases_dir):
    """A file written within the timestamp granularity of its entry: a second edit may leave every stat field as
    it was (coarse clocks), so the entry is trusted only if the bytes still hash the same."""
    path = write_case("t/c.yaml", CASE)  # just written: racy
    fill(cache, path, cases_dir)
    entry = json.loads(stored(cache, path))
    assert entry["racy"] is True
    path.write_text(path.read_text().replace("[4, 8]", "[4, 9]"))
    st = os.stat(path)
    entry["stat"] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]  # as a coarse clock leaves it
    store(cache, path, json.dumps(entry))
    (case,) = check_file(path, cases_dir, cache)[0]
    assert case.expect.values == {"y": [4, 9]}


def test_a_changed_data_file_is_checked_again(cache, write_case, cases_dir):
    path = write_case("t/npy.yaml", CASE.replace("inputs: {x: [1, 2]}", "inputs: {x: {npy: x.npy}}"))
    np.save(cases_dir / "t" / "x.npy", np.array([1, 2], np.float32), allow_pickle=False)
    age(path)
    assert fill(cache, path, cases_dir)[1] == []
    assert cache.get(path, cases_dir) is not None
    np.save(cases_dir / "t" / "x.npy", np.array([1, 2, 3], np.float32), allow_pickle=False)
    cases, errors = check_file(path, cases_dir, cache)
    assert cases == [] and "holds 3 elements" in str(errors[0]) and errors[0].line == 8


def test_a_file_with_problems_is_never_kept(cache, write_case, cases_dir):
    path = write_case("t/bad.yaml", CASE.replace("to: int8", "to: int9"))
    age(path)
    assert fill(cache, path, cases_dir)[1]
    assert stored(cache, path) is None
    assert check_file(path, cases_dir, cache)[1]


def test_values_json_would_change_are_never_kept(cache, write_case, cases_dir):
    path = write_case("t/date.yaml", CASE.replace("title: t", "title: t ${d}") + "matrix: {d: [2024-05-01]}\n")
    age(path)
    (case,) = fill(cache, path, cases_dir)[0]
    assert case.id == "t/date::d=2024-05-01" and case.title == "t 2024-05-01"  # a YAML date, as a parameter
    assert stored(cache, path) is None
    assert repr(check_file(path, cases_dir, cache)[0][0]) == repr(case)


STRUCTURE = "structure"  # valid JSON, fingerprint and stat right, the rest not as kept


@pytest.mark.parametrize("damage", ["", "{not json", '{"fingerprint": 1}', "[]", "null", STRUCTURE])
def test_a_damaged_entry_is_a_miss_and_is_replaced(cache, write_case, cases_dir, damage):
    path = write_case("t/c.yaml", CASE)
    age(path)
    fill(cache, path, cases_dir)
    if damage == STRUCTURE:
        entry = json.loads(stored(cache, path))
        entry["cases"] = [{"id": "t/c"}]  # no body, params or prefix
        damage = json.dumps(entry)
    store(cache, path, damage)
    (case,) = fill(cache, path, cases_dir)[0]
    assert case.expect.values == {"y": [4, 8]}
    assert json.loads(stored(cache, path))["cases"][0]["id"] == "t/c"


def test_another_loader_version_or_root_is_a_miss(cache, tmp_path, write_case, cases_dir, monkeypatch):
    path = write_case("t/c.yaml", CASE)
    age(path)
    fill(cache, path, cases_dir)
    assert cache.get(path, cases_dir) is not None
    assert cache.get(path, cases_dir / "t") is None  # ids are paths under the root: t/c vs c
    assert ParseCache(cache.database).get(path, cases_dir) is not None
    monkeypatch.setattr("harness.cases.parsecache.FORMAT", 2)
    assert ParseCache(cache.database).get(path, cases_dir) is None


def test_an_unwritable_cache_folder_only_costs_time(tmp_path, write_case, cases_dir):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    path = write_case("t/c.yaml", CASE)
    unwritable = ParseCache(blocked / "parsed.sqlite3")
    (case,) = fill(unwritable, path, cases_dir)[0]
    assert case.id == "t/c"
    not_a_database = tmp_path / "garbage.sqlite3"
    not_a_database.write_bytes(b"\x00garbage" * 100)
    (case,) = fill(ParseCache(not_a_database), path, cases_dir)[0]
    assert case.id == "t/c"


def test_prune_removes_the_entries_of_files_that_are_gone(cache, tmp_path):
    for name in ("kept", "gone"):
        folder = tmp_path / name / "cases"
        folder.mkdir(parents=True)
        (folder / "c.yaml").write_text(CASE)
        age(folder / "c.yaml")
        fill(cache, folder / "c.yaml", folder)
    (tmp_path / "gone" / "cases" / "c.yaml").unlink()
    cache.prune()
    assert stored(cache, tmp_path / "kept" / "cases" / "c.yaml") is not None
    assert stored(cache, tmp_path / "gone" / "cases" / "c.yaml") is None


def _pytest_run(folder, out, cache_dir, *extra):
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(folder),
            "--qdq-backend",
            "numpy",
            "--qdq-out",
            str(out),
            "-q",
            "-p",
            "no:cacheprovider",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "QDQ_CACHE": str(cache_dir)},
    )


def test_a_run_keeps_what_it_parsed_and_the_next_run_takes_it_from_there(tmp_path, write_case, cases_dir):
    for name in ("a", "b"):
        age(write_case(f"t/{name}.yaml", CASE.replace("title: t", f"title: case {name}")))
    cache_dir = tmp_path / "cache"
    first = _pytest_run(cases_dir, tmp_path / "o1", cache_dir)
    assert first.returncode == 0, first.stdout[-2000:]
    database = ParseCache(cache_dir / "parsed.sqlite3")
    with sqlite3.connect(database.database) as db:
        rows = dict(db.execute("SELECT path, entry FROM entries"))
    assert sorted(rows) == [str(cases_dir / "t" / "a.yaml"), str(cases_dir / "t" / "b.yaml")]
    # What the second run shows comes from the entry: a title changed there (and only there) is the one it reports.
    entry = json.loads(rows[str(cases_dir / "t" / "a.yaml")])
    entry["cases"][0]["body"]["title"] = "from the cache"
    store(database, cases_dir / "t" / "a.yaml", json.dumps(entry))
    second = _pytest_run(cases_dir, tmp_path / "o2", cache_dir)
    assert second.returncode == 0, second.stdout[-2000:]
    cases = json.loads((tmp_path / "o2" / "results.json").read_text())["cases"]
    assert cases["t/a"]["title"] == "from the cache" and cases["t/b"]["title"] == "case b"
    _pytest_run(cases_dir, tmp_path / "o3", cache_dir, "--qdq-no-parse-cache")
    assert json.loads((tmp_path / "o3" / "results.json").read_text())["cases"]["t/a"]["title"] == "case a"

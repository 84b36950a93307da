"""Bundles and packs from elsewhere, damaged or hostile: `qdq compare` (and `qdq coverage`) answer each with one
line and exit 2, under a memory cap and a timeout, reading nothing outside the bundle and leaving no temporary
folder; a run that never finished is stated first and its missing items fail the comparison.

Each kind is made from one good bundle by a small function, so the list reads as the threat model.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import MINIMAL, REPO

MEMORY_CAP = 2 << 30
BIG = 1_200_000  # int8 elements: over the 1 MiB that goes to a pack, so this output is a file of its own


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def qdq(*args: str, cwd: Path, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_capped,
        env=env,
    )


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A real bundle: two small cases (their outputs in a pack) and a large one (an outputs file of its own)."""
    root = tmp_path_factory.mktemp("bundles")
    cases = root / "cases"
    cases.mkdir()
    (cases / "small.yaml").write_text(MINIMAL)
    (cases / "other.yaml").write_text(MINIMAL.replace("[1, 2]", "[3, 4]"))
    (cases / "large.yaml").write_text(
        MINIMAL.replace("shape: [2]", f"shape: [{BIG}]").replace("inputs: {x: [1, 2]}", "inputs: {x: {fill: 1}}")
    )
    out = root / "good"
    done = qdq("run", str(cases), "--backend", "numpy", "--out", str(out), "--no-report", cwd=root)
    assert done.returncode == 0, done.stderr
    return out


def _doc(bundle: Path) -> dict:
    return json.loads((bundle / "results.json").read_text())


def _write(bundle: Path, doc) -> None:
    (bundle / "results.json").write_text(json.dumps(doc))


def _record(doc: dict, which: str) -> dict:
    return next(r for r in doc["records"] if r["case_id"] == which)


def _retarget(bundle: Path, which: str, **fields) -> None:
    doc = _doc(bundle)
    _record(doc, which).update(fields)
    for r in doc["records"]:  # a changed hash makes compare read the outputs
        if r["case_id"] == which:
            r["outputs_hash"] = "0" * 16
    _write(bundle, doc)


def _npz_bomb(path: Path) -> None:
    """A 600 MB member of zeros that compresses to well under a megabyte."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("y.npy", "w", force_zip64=True) as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": (150_000_000,)}
            )
            f.write(header.getvalue())
            chunk = bytes(1 << 24)
            for _ in range(600_000_000 // len(chunk) + 1):
                f.write(chunk)
        zf.writestr("__dtypes__.npy", _npy(np.array(json.dumps({"y": "float32"}))))


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _lying_header(path: Path) -> None:
    """An .npy whose header declares 10^9 floats over 8 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("y.npy", header.getvalue() + bytes(8))
        zf.writestr("__dtypes__.npy", _npy(np.array(json.dumps({"y": "float32"}))))


def _object_array(path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("y.npy", header.getvalue() + b"\x80\x04N.")
        zf.writestr("__dtypes__.npy", _npy(np.array(json.dumps({"y": "float32"}))))


def _large_file(bundle: Path) -> Path:
    return bundle / _record(_doc(bundle), "large")["outputs_file"]


DAMAGE = {  # name -> (what it does to a copy of the good bundle, the message fragment)
    "results-not-json": (lambda b: (b / "results.json").write_text("{not json"), "not JSON"),
    "results-a-list": (lambda b: _write(b, []), "must be a JSON object"),
    "records-not-a-list": (lambda b: _write(b, {**_doc(b), "records": {"a": 1}}), "`records` must be a list"),
    "status-a-number": (
        lambda b: _write(b, {**_doc(b), "records": [{**_doc(b)["records"][0], "status": 5}]}),
        "has status 5",
    ),
    "record-without-case-id": (lambda b: _write(b, {**_doc(b), "records": [{"status": "pass"}]}), "case_id"),
    "record-a-string": (lambda b: _write(b, {**_doc(b), "records": ["x"]}), "is str, not an object"),
    "cases-a-list": (lambda b: _write(b, {**_doc(b), "cases": []}), "`cases` must be an object"),
    "range-negative": (lambda b: _retarget(b, "small", outputs_range=[-5, 10]), "outputs_range"),
    "range-past-the-end": (lambda b: _retarget(b, "small", outputs_range=[10**6, 1000]), "ends before"),
    "range-huge": (lambda b: _retarget(b, "small", outputs_range=[0, 2_500_000_000]), "over the limit"),
    "outputs-dev-zero": (
        lambda b: _retarget(b, "small", outputs_file="/dev/zero", outputs_range=[0, 2_500_000_000]),
        "not a path inside the bundle",
    ),
    "outputs-dot-dot": (lambda b: _retarget(b, "large", outputs_file="../secret.npz"), "outside the bundle"),
    "outputs-symlink-out": (
        lambda b: (
            os.symlink(b.parent / "secret.npz", b / "outputs" / "link.npz"),
            _retarget(b, "large", outputs_file="outputs/link.npz"),
        ),
        "outside the bundle",
    ),
    "outputs-fifo": (
        lambda b: (os.mkfifo(b / "outputs" / "fifo.npz"), _retarget(b, "large", outputs_file="outputs/fifo.npz")),
        "not a regular file",
    ),
    "outputs-zip-bomb": (lambda b: _npz_bomb(_large_file(b)) or _retarget(b, "large"), "over the limit"),
    "outputs-lying-header": (lambda b: _lying_header(_large_file(b)) or _retarget(b, "large"), "declares"),
    "outputs-pickled-object": (lambda b: _object_array(_large_file(b)) or _retarget(b, "large"), "Python objects"),
    "outputs-not-a-zip": (
        lambda b: (_large_file(b).write_bytes(b"junk" * 100), _retarget(b, "large")),
        "not readable outputs",
    ),
    "results-a-fifo": (lambda b: ((b / "results.json").unlink(), os.mkfifo(b / "results.json")), "not a regular file"),
    "results-over-the-limit": (lambda b: _sparse(b / "results.json", 2 << 30), "over the limit"),
}
READ_ON_DRIFT: set[str] = set()


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_or_hostile_bundle_is_one_line_and_exit_2(good, tmp_path, name):
    damage, fragment = DAMAGE[name]
    (tmp_path / "secret.npz").write_bytes(good.joinpath(_record(_doc(good), "large")["outputs_file"]).read_bytes())
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    damage(bad)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = qdq("compare", str(good), str(bad), cwd=tmp_path)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-3000:]
    if name in READ_ON_DRIFT or done.returncode != 2:
        # A range or file that cannot be read where only its hash was needed still is named, never read.
        assert fragment in out, out[-2000:]
    else:
        assert len(done.stderr.strip().splitlines()) == 1 and fragment in done.stderr, done.stderr
    assert done.returncode in (1, 2), done.returncode
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside it


def test_coverage_of_a_damaged_bundle_is_one_line(good, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    _write(bad, {**_doc(bad), "records": [{"status": "pass"}]})
    done = qdq("coverage", str(bad), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --- packs --------------------------------------------------------------------------------------------------------


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _member(name: str, data: bytes = b"", **kw) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


PACKS = {
    "not-gzip": (lambda p: p.write_bytes(b"plain text"), "not a readable qdq pack"),
    "truncated": (lambda p, good=None: p.write_bytes(p.read_bytes()[:200]), "not a readable qdq pack"),
    "absolute-path": (lambda p: _tar(p, [_member("/tmp/qdq-escape", b"x")]), "holds bundle/results.json"),
    "dot-dot": (lambda p: _tar(p, [_member("../escape", b"x")]), "not a readable qdq pack"),
    "symlink-out": (
        lambda p: _tar(p, [_member("bundle/results.json", type=tarfile.SYMTYPE, linkname="/etc/passwd")]),
        "not a readable qdq pack",
    ),
    "device": (
        lambda p: _tar(p, [_member("bundle/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=5)]),
        "not a readable qdq pack",
    ),
    "no-results": (lambda p: _tar(p, [_member("bundle/other.txt", b"x")]), "holds bundle/results.json"),
    "gzip-of-garbage": (lambda p: p.write_bytes(gzip.compress(b"\x01" * 10_000)), "not a readable qdq pack"),
}


@pytest.mark.parametrize("name", sorted(PACKS))
def test_a_bad_pack_is_one_line_and_leaves_no_temporary_folder(good, tmp_path, name):
    make, fragment = PACKS[name]
    archive = tmp_path / "bad.tar.gz"
    shutil.copy(_good_pack(good, tmp_path), archive)
    make(archive)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = qdq("compare", str(good), str(archive), cwd=tmp_path, tmpdir=scratch)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and fragment in done.stderr, done.stderr
    assert not list(scratch.iterdir()), list(scratch.rglob("*"))
    assert not Path("/tmp/qdq-escape").exists()


def _good_pack(good: Path, tmp_path: Path) -> Path:
    target = tmp_path / "good.tar.gz"
    if not target.exists():
        assert qdq("pack", str(good), "-o", str(target), cwd=tmp_path).returncode == 0
    return target


def test_a_good_pack_compares_and_its_temporary_folder_is_removed(good, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = qdq("compare", str(_good_pack(good, tmp_path)), str(good), cwd=tmp_path, tmpdir=scratch)
    assert done.returncode == 0 and "no change" in done.stdout, done.stdout + done.stderr
    assert not list(scratch.iterdir())


def test_a_pack_over_the_size_limit_is_refused_before_extraction(tmp_path, monkeypatch):
    from harness.results import bundlecheck
    from harness.cases import limits

    archive = tmp_path / "bomb.tar.gz"
    _tar(archive, [_member("bundle/results.json", b"{}"), _member("bundle/zeros", bytes(5 << 20))])
    monkeypatch.setattr(limits, "MAX_ARCHIVE_BYTES", 1 << 20)
    into = tmp_path / "into"
    with pytest.raises(bundlecheck.BundleError, match="unpacks to over"):
        bundlecheck.safe_extract(archive, into)
    assert not (into / "bundle" / "zeros").exists()


# --- runs that never finished -------------------------------------------------------------------------------------


def test_a_partial_run_is_stated_first_and_its_missing_items_fail_the_comparison(good, tmp_path):
    killed = tmp_path / "killed"
    shutil.copytree(good, killed)
    doc = _doc(killed)
    doc["partial"], doc["records"] = True, doc["records"][:1]
    _write(killed, doc)
    done = qdq("compare", str(good), str(killed), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith("PARTIAL: ") and str(killed) in done.stdout.splitlines()[0]
    assert "--allow-partial" in done.stderr
    assert qdq("compare", str(good), str(killed), "--allow-partial", cwd=tmp_path).returncode == 0
    # The other way round nothing is lost: stated, not failed.
    backwards = qdq("compare", str(killed), str(good), cwd=tmp_path)
    assert backwards.returncode == 0 and backwards.stdout.startswith("PARTIAL: ")

"""Backends come from the entry-point group `qdq_harness.backends`: a third-party package adds one, and a backend
that crashes or cannot even be imported never stops the others."""

import json
import os
import subprocess
import sys
import textwrap

from conftest import REPO, run_qdq

CRASHY = """
from harness.engine.backend import Availability, Backend, Runner


class _Boom(Runner):
    def infer(self, feeds):
        raise RuntimeError("kaboom from a third-party backend")


class Crashy(Backend):
    name = "crashy"
    product = "a test backend that crashes in infer"
    description = product

    def availability(self):
        return Availability(True, "0.1", "")

    def load(self, case):
        return _Boom()
"""


def _install_fake_distribution(site, entry_points: str):
    dist = site / "fake_qdq_backends-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-qdq-backends\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (site / "crashy_backend.py").write_text(CRASHY)


def test_third_party_backend_is_discovered_and_its_crash_is_an_error_item(tmp_path):
    site = tmp_path / "site"
    _install_fake_distribution(
        site,
        """
        [qdq_harness.backends]
        crashy = crashy_backend:Crashy
        broken = no_such_module:Nothing
    """,
    )
    env = {"PYTHONPATH": str(site)}
    listing = run_qdq("backends", env=env)
    assert "crashy" in listing.stdout
    broken_row = next(l for l in listing.stdout.splitlines() if l.startswith("broken"))
    assert " no " in broken_row and "No module named 'no_such_module'" in broken_row

    out = tmp_path / "out"
    r = run_qdq(
        "run",
        "cases/docs",
        "--backend",
        "numpy",
        "--backend",
        "crashy",
        "--backend",
        "broken",
        "--out",
        str(out),
        env=env,
    )
    assert r.returncode == 1
    records = json.loads((out / "results.json").read_text())["records"]
    crashy = [x for x in records if x["backend"] == "crashy"]
    assert crashy and all(x["status"] == "error" and x["kind"] == "backend-crash" for x in crashy)
    assert "kaboom" in crashy[0]["reason"]
    broken = [x for x in records if x["backend"] == "broken"]
    assert broken and all(x["status"] == "skip" and "failed to load" in x["reason"] for x in broken)
    numpy_records = [x for x in records if x["backend"] == "numpy"]
    assert len(numpy_records) == 6 and {x["status"] for x in numpy_records} == {"pass", "xfail"}


ISOLATED = """
import ctypes
import sys
import time

from harness.engine.backend import Availability, Backend, Runner


class _Never(Runner):
    def infer(self, feeds):
        raise AssertionError("unreachable")


class Segfaulting(Backend):
    name = "segfaulting"
    product = description = "a test backend whose build segfaults"
    isolated = True

    def availability(self):
        return Availability(True, "0.1", "")

    def load(self, case):
        print("segfaulting backend: about to dereference NULL", file=sys.stderr, flush=True)
        ctypes.string_at(0)
        return _Never()


class Hanging(Backend):
    name = "hanging"
    product = description = "a test backend whose build never returns"
    isolated = True

    def availability(self):
        return Availability(True, "0.1", "")

    def load(self, case):
        print("hanging backend: sleeping", file=sys.stderr, flush=True)
        time.sleep(600)
        return _Never()
"""


def test_segfaulting_and_hanging_backends_end_as_error_items_and_the_run_goes_on(tmp_path):
    site = tmp_path / "site"
    _install_fake_distribution(
        site,
        """
        [qdq_harness.backends]
        segfaulting = isolated_backends:Segfaulting
        hanging = isolated_backends:Hanging
    """,
    )
    (site / "isolated_backends.py").write_text(ISOLATED)
    out = tmp_path / "out"
    r = run_qdq(
        "run",
        "cases/docs/s1-per-tensor-int8.yaml",
        "cases/docs/s2-per-channel-axis1.yaml",
        "--backend",
        "segfaulting",
        "--backend",
        "hanging",
        "--backend",
        "numpy",
        "--out",
        str(out),
        env={"PYTHONPATH": str(site), "QDQ_BACKEND_TIMEOUT": "3"},
    )
    assert r.returncode == 1
    records = json.loads((out / "results.json").read_text())["records"]
    by = {(x["case_id"], x["backend"]): x for x in records}
    for case in ("docs/s1-per-tensor-int8", "docs/s2-per-channel-axis1"):
        seg = by[(case, "segfaulting")]
        assert (seg["status"], seg["kind"]) == ("error", "backend-crash")
        assert "SIGSEGV" in seg["metrics"]["traceback"] and "about to dereference NULL" in seg["metrics"]["traceback"]
        hang = by[(case, "hanging")]
        assert (hang["status"], hang["kind"]) == ("error", "backend-crash")
        assert (
            "no answer within 3 s" in hang["metrics"]["traceback"]
            and "hanging backend: sleeping" in hang["metrics"]["traceback"]
        )
        assert by[(case, "numpy")]["status"] == "pass"  # the run went on


def test_workers_are_pinned_one_gpu_each(monkeypatch):
    from harness.engine.backend import discover
    from harness.engine.isolation import _environment

    trt = discover()["tensorrt"]()
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert _environment(trt) == {}  # no xdist worker id: nothing to pin
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert _environment(trt) == {"CUDA_VISIBLE_DEVICES": "3"}
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert _environment(trt) == {"CUDA_VISIBLE_DEVICES": "5"}
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    assert _environment(trt) == {"CUDA_VISIBLE_DEVICES": "3"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # one GPU: nothing to pin
    assert _environment(trt) == {}
    assert _environment(discover()["numpy"]()) == {}  # a CPU backend pins nothing


IN_PROCESS_SEGFAULT = """
import ctypes

from harness.engine.backend import Availability, Backend


class InProcessSegfault(Backend):
    name = "inprocess-segfault"
    product = description = "a test backend that segfaults inside the pytest worker itself (not isolated)"
    isolated = False

    def availability(self):
        return Availability(True, "0.1", "")

    def load(self, case):
        ctypes.string_at(0)
"""


def test_an_xdist_worker_crash_still_gets_a_record_and_an_allure_result(tmp_path):
    site = tmp_path / "site"
    _install_fake_distribution(
        site,
        """
        [qdq_harness.backends]
        inprocess-segfault = inprocess_backend:InProcessSegfault
    """,
    )
    (site / "inprocess_backend.py").write_text(IN_PROCESS_SEGFAULT)
    out = tmp_path / "out"
    # pytest-xdist itself (`qdq run -n` runs shares in processes of their own, resumed by qdq: tests/test_faults.py)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "cases/docs/s2-per-channel-axis1.yaml", "-n", "2", "-p", "no:cacheprovider"]
        + ["--qdq-backend", "numpy", "--qdq-backend", "inprocess-segfault", "--qdq-out", str(out)]
        + ["--alluredir", str(out / "allure-results"), "-q"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stdout[-2000:]
    records = json.loads((out / "results.json").read_text())["records"]
    crashed = [x for x in records if x["status"] == "error" and "crashed" in x["reason"]]
    # xdist's loadgroup scheduler re-queues a crashed item with its group, so it may crash several workers; the
    # bundle keeps one record per item, and the other items still ran.
    assert crashed and all("inprocess-segfault" in x["nodeid"] for x in crashed)
    # the case's own id (not its file's path): one row per case in every table
    assert {(x["case_id"], x["backend"]) for x in crashed} == {("docs/s2-per-channel-axis1", "inprocess-segfault")}
    assert len({x["nodeid"] for x in crashed}) == len(crashed)
    assert any(x["backend"] == "numpy" and x["status"] == "pass" for x in records)
    broken = [json.loads(p.read_text()) for p in (out / "allure-results").glob("*-result.json")]
    broken = [b for b in broken if b["status"] == "broken" and "inprocess-segfault" in b["fullName"]]
    assert len(broken) == len(crashed) and all(
        b["statusDetails"]["message"].startswith("BACKEND-CRASH: ") for b in broken
    )

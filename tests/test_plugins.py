"""Backends come from the entry-point group `qdq_harness.backends`: a third-party package adds one, and a backend
that crashes or cannot even be imported never stops the others."""

import json
import textwrap

from conftest import run_qdq

CRASHY = '''
from harness.backend import Availability, Backend, Runner


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
'''


def _install_fake_distribution(site, entry_points: str):
    dist = site / "fake_qdq_backends-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-qdq-backends\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (site / "crashy_backend.py").write_text(CRASHY)


def test_third_party_backend_is_discovered_and_its_crash_is_an_error_item(tmp_path):
    site = tmp_path / "site"
    _install_fake_distribution(site, """
        [qdq_harness.backends]
        crashy = crashy_backend:Crashy
        broken = no_such_module:Nothing
    """)
    env = {"PYTHONPATH": str(site)}
    listing = run_qdq("backends", env=env)
    assert "crashy" in listing.stdout
    broken_row = next(l for l in listing.stdout.splitlines() if l.startswith("broken"))
    assert " no " in broken_row and "No module named 'no_such_module'" in broken_row

    out = tmp_path / "out"
    r = run_qdq("run", "cases/docs", "--backend", "numpy", "--backend", "crashy", "--backend", "broken",
                "--out", str(out), env=env)
    assert r.returncode == 1
    records = json.loads((out / "results.json").read_text())["records"]
    crashy = [x for x in records if x["backend"] == "crashy"]
    assert crashy and all(x["status"] == "error" and x["kind"] == "backend-crash" for x in crashy)
    assert "kaboom" in crashy[0]["reason"]
    broken = [x for x in records if x["backend"] == "broken"]
    assert broken and all(x["status"] == "skip" and "failed to load" in x["reason"] for x in broken)
    numpy_records = [x for x in records if x["backend"] == "numpy"]
    assert len(numpy_records) == 6 and {x["status"] for x in numpy_records} == {"pass", "xfail"}

"""Backends that misbehave on purpose, for tests/test_faults.py: a third-party package as a user would write one.

QDQ_TEST_MARKERS names a file each `load` appends the case id to before misbehaving, so a test knows how far a run got.
"""

from __future__ import annotations

import ctypes
import os
import time

from harness.engine.backend import Availability, Backend


def _mark(case) -> None:
    path = os.environ.get("QDQ_TEST_MARKERS")
    if path:
        with open(path, "a") as f:
            f.write(case.id + "\n")


def _reference(case):
    from plugins.numpy.backend import NumpyReference

    return NumpyReference().load(case)


class _Test(Backend):
    product = description = "a test backend"

    def availability(self):
        return Availability(True, "0.1", "")


class InProcessSegfault(_Test):
    name = "inprocess-segfault"
    isolated = False

    def load(self, case):
        ctypes.string_at(0)


class InProcessHang(_Test):
    name = "inprocess-hang"
    isolated = False

    def load(self, case):
        time.sleep(600)


class NoisyNative(_Test):
    """The numpy reference in an isolation worker whose native code prints to stdout: lines shaped like the
    protocol's answers, one of them a wrong verdict for the next request."""

    name = "noisy"
    isolated = True

    def load(self, case):
        libc = ctypes.CDLL(None)
        libc.printf(b'{"id": 1, "outputs": null, "error": null, "crash": null, "inputs": null, "seconds": 0}\n')
        libc.printf(b'{"ready": true}\n')
        libc.fflush(None)
        runner = _reference(case)
        libc.printf(b"after the build\n")
        libc.fflush(None)
        return runner


class Slow(_Test):
    """The numpy reference, 0.3 s per case, in the pytest process."""

    name = "slow"
    isolated = False

    def load(self, case):
        _mark(case)
        time.sleep(0.3)
        gate = os.environ.get("QDQ_TEST_GATE")  # a test holds the run here until it creates this file
        deadline = time.monotonic() + 120
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        return _reference(case)


class Scripted(_Test):
    """The numpy reference with a repro script and an artifact of its own: a third-party backend gets both into
    the report exactly as a shipped one does."""

    name = "scripted"
    isolated = True

    def load(self, case):
        runner = _reference(case)
        runner.artifacts["plan.txt"] = f"plan of {case.id}".encode()
        return runner

    def repro(self, case):
        return f"# repro of {case.id} on the scripted test backend\nprint('scripted')\n"

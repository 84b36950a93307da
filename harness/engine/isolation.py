"""Crash isolation: backends with `isolated = True` (the default; all but the pure-Python ones) build and run in a persistent worker
process per backend, restarted after a crash. A segfault, a CUDA error that kills the process, or a hang past the
timeout fails that case with status `error` and the worker's captured stderr; the run goes on.

Protocol (no pickles), on two pipes of its own, never on file descriptors 0, 1 or 2: a backend's native code that
writes to stdout cannot shift the answers. The run configuration is the worker's last argument. One JSON line per
request `{"id", "op", "case"}`, the case as data (harness.cases.load.case_to_data: nothing to re-parse);
one JSON line per answer carrying the request's `id` (an answer to another request is discarded, never taken for
this one), arrays as base64 .npz (harness.results.bundle's encoding, loaded with allow_pickle=False). The worker's fds 1
and 2 both go to a file whose tail becomes the crash report.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from harness.results.bundle import json_default
from harness.cases.case import Case
from harness.cases.load import case_to_data
from harness.engine.config import RunConfig
from harness.cases.errors import QdqError
from harness.engine.execute import Outcome

STARTUP_TIMEOUT_S = 120.0  # importing the backend's libraries; not counted in a case's timeout


INLINE_BYTES = 1 << 20  # larger arrays cross through a file, not as base64 in the JSON line


def encode_arrays(arrays: dict[str, np.ndarray] | None) -> str | dict | None:
    """Small arrays as base64 .npz text in the answer; large ones as an .npz file the reader loads and deletes
    (base64 of 64 MB would cost more than the case)."""
    if arrays is None:
        return None
    from harness.results.bundle import encode_npz

    if sum(np.asarray(a).nbytes for a in arrays.values()) <= INLINE_BYTES:
        return base64.b64encode(encode_npz(arrays)).decode()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix=f"qdq-{os.getpid()}-", suffix=".npz", dir=shm)
    with os.fdopen(fd, "wb") as f:
        f.write(encode_npz(arrays))
    return {"npz_file": path}


def decode_arrays(data: str | dict | None) -> dict[str, np.ndarray] | None:
    if data is None:
        return None
    from harness.results.bundle import decode_npz

    if isinstance(data, dict):
        path = data["npz_file"]
        try:
            with open(path, "rb") as f:
                return decode_npz(f.read())
        finally:
            os.unlink(path)
    return decode_npz(base64.b64decode(data))


class Worker:
    """One persistent `python -m harness.engine.worker BACKEND` process."""

    def __init__(self, backend_name: str, config: RunConfig, environment: dict[str, str] | None = None):
        self.backend_name = backend_name
        self.config = config
        self.environment = environment or {}  # what the backend adds to the worker's environment (a GPU to pin)
        self.process: subprocess.Popen | None = None
        self.stderr = None
        self.requests = None  # our end of the request pipe
        self.answers = None  # our end of the answer pipe
        self.pending = b""  # bytes read past the last answer
        self.next_id = 0

    def _start(self) -> None:
        self._release()
        self.stderr = tempfile.TemporaryFile()
        req_read, req_write = os.pipe()
        ans_read, ans_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "harness.engine.worker",
                    self.backend_name,
                    str(req_read),
                    str(ans_write),
                    json.dumps(self.config.as_dict()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=self.stderr,
                stderr=self.stderr,
                pass_fds=(req_read, ans_write),
                start_new_session=True,
                env={**os.environ, **self.environment},
            )
        finally:
            os.close(req_read)
            os.close(ans_write)
        self.requests = os.fdopen(req_write, "wb")
        self.answers = ans_read
        self.pending = b""

    def _stderr_tail(self, limit: int = 4000) -> str:
        if self.stderr is None:
            return ""
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-limit:]

    def _kill(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                self.requests.close()
                self.process.wait(timeout=5)
            except Exception:
                self._kill()
        self._release()

    def _release(self) -> None:
        """Close the pipes and the stderr file of the current (finished) process."""
        if self.requests is not None:
            try:
                self.requests.close()
            except OSError:
                pass
            self.requests = None
        if self.answers is not None:
            os.close(self.answers)
            self.answers = None
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None
        self.process = None

    def request(self, op: str, case: Case, timeout: float) -> dict:
        """The worker's answer, or {"crash": ...} when it died or hung (it is restarted on the next request)."""
        if self.process is None or self.process.poll() is not None:
            self._start()
            ready = self._read_answer(None, STARTUP_TIMEOUT_S, "starting")
            if "crash" in ready:
                return ready
        self.next_id += 1
        request_id = self.next_id
        line = json.dumps({"id": request_id, "op": op, "case": case_to_data(case)}, default=json_default) + "\n"
        try:
            self.requests.write(line.encode())
            self.requests.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: the read below reports how
        return self._read_answer(request_id, timeout, "running " + case.id)

    def _read_answer(self, request_id: int | None, timeout: float, doing: str) -> dict:
        """The next answer tagged `request_id` (None: the ready line). Chunks are kept in a list and joined once:
        a large answer costs linear time."""
        deadline = time.monotonic() + timeout
        chunks = [self.pending] if self.pending else []
        while True:
            joined = b"".join(chunks)
            while b"\n" in joined:
                line, joined = joined.split(b"\n", 1)
                answer = _parse(line)
                if answer is not None and answer.get("id") == request_id:
                    self.pending = joined
                    answer.pop("id", None)
                    return answer
            chunks = [joined] if joined else []
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                crash = (
                    f"{self.backend_name} worker hung {doing}: no answer within {timeout:g} s; killed.\n"
                    f"{self._stderr_tail()}"
                )
                self._release()
                return {"crash": crash}
            ready, _, _ = select.select([self.answers], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self.answers, 1 << 20)
            if not chunk:
                code = self.process.wait()
                how = f"killed by signal {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
                crash = f"{self.backend_name} worker {how} while {doing}.\n{self._stderr_tail()}"
                self._release()
                return {"crash": crash}
            while b"\n" not in chunk:  # read the rest of a long line without re-scanning what is read
                chunks.append(chunk)
                ready, _, _ = select.select([self.answers], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                chunk = os.read(self.answers, 1 << 20)
                if not chunk:
                    break
            chunks.append(chunk)


def _parse(line: bytes) -> dict | None:
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _environment(backend) -> dict[str, str]:
    """The variables the backend sets for its worker process (in this pytest worker), never raising."""
    hook = getattr(backend, "worker_environment", None)
    if hook is None:
        return {}
    try:
        worker = os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("QDQ_WORKER_ID", "")  # xdist's; qdq run -n's
        return {str(k): str(v) for k, v in hook(worker).items()}
    except Exception:  # noqa: BLE001 - a broken hook costs the pinning, not the run
        return {}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class WorkerPool:
    """One worker per isolated backend, for one pytest process (kept in the run state, closed at session end)."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.workers: dict[str, Worker] = {}

    def worker(self, name: str, backend=None) -> Worker:
        if name not in self.workers:
            self.workers[name] = Worker(name, self.config, _environment(backend))
        return self.workers[name]

    def execute(self, name: str, backend, case: Case) -> Outcome:
        answer = self.worker(name, backend).request("execute", case, self.config.timeout_for(backend))
        return outcome_from(answer)

    def run(self, name: str, backend, case: Case) -> tuple[str | None, Outcome | None]:
        """The feature check and the case in one round trip: (why it is skipped, None) or (None, its outcome)."""
        answer = self.worker(name, backend).request("run", case, self.config.timeout_for(backend))
        if answer.get("skip_reason"):
            return answer["skip_reason"], None
        return None, outcome_from(answer)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()


def outcome_from(answer: dict) -> Outcome:
    err = answer.get("error")
    return Outcome(
        outputs=decode_arrays(answer.get("outputs")),
        error=QdqError(err["category"], err["message"], native=err["native"], phase=err["phase"]) if err else None,
        crash=answer.get("crash"),
        inputs=decode_arrays(answer.get("inputs")) or {},
        seconds=answer.get("seconds", 0.0),
        skip=answer.get("skip"),
        built_not_run=answer.get("built_not_run"),
        skip_kind=answer.get("skip_kind"),
        details=answer.get("details") or {},
        artifacts={k: base64.b64decode(v) for k, v in (answer.get("artifacts") or {}).items()},
        timings=answer.get("timings") or {},
    )


def answer_for(outcome: Outcome) -> dict:
    return {
        "outputs": encode_arrays(outcome.outputs),
        "error": outcome.error.as_dict() if outcome.error else None,
        "crash": outcome.crash,
        "inputs": encode_arrays(outcome.inputs),
        "seconds": outcome.seconds,
        "skip": outcome.skip,
        "built_not_run": outcome.built_not_run,
        "skip_kind": outcome.skip_kind,
        "details": outcome.details,
        "artifacts": {k: base64.b64encode(v).decode() for k, v in outcome.artifacts.items()},
        "timings": outcome.timings,
    }

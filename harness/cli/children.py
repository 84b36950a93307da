"""The pytest processes of `qdq run`: one, or N side by side (`-n N`, each a share of the cases), each resumed after
it dies; Ctrl-C and SIGTERM are passed on to all of them, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MAX_RESUMES = 50  # pytest processes one `qdq run` may start after crashes, per share
POLL_S = 0.02  # how often the driver looks for a finished process (a share waits at most this long to be resumed)


@dataclass
class Child:
    """One pytest process of the run and what it needs to be started again."""

    args: list[str]  # pytest's arguments
    out: Path  # the bundle folder it writes
    allure: Path | None = None  # the Allure results folder (a crash's result is written there)
    env: dict | None = None  # variables it sets on top of ours
    log: Path | None = None  # where its output goes; None: this terminal
    label: str = ""  # how the driver names it when it ends ("share 1/2")
    resumes: int = 0
    process: subprocess.Popen | None = None
    code: int | None = None  # pytest's exit status once it is done for good

    def start(self) -> None:
        args = self.args + (["--qdq-resume"] if self.resumes and "--qdq-resume" not in self.args else [])
        output = open(self.log, "a", encoding="utf-8") if self.log else None
        try:
            # Its own session: a Ctrl-C reaches it once, through the driver; it dies with us (PR_SET_PDEATHSIG).
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pytest", *args],
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, **self.env} if self.env else None,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
        finally:
            if output:
                output.close()


def run(children: list[Child], paths: list[Path]) -> int:
    """Runs every child to its end, resuming one that was killed (its lost item recorded as an error). Returns the
    signal that ended the run, else 0; each child's `code` is set."""
    from harness.results import bundle

    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        for child in children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for child in children:
            child.start()
        running = list(children)
        while running:
            time.sleep(POLL_S)
            for child in list(running):
                code = child.process.poll()
                if code is None:
                    continue
                if received or not _resumed(child, code, paths, bundle):
                    running.remove(child)
                    if child.code is None:
                        child.code = code
                    if child.log is not None:  # its output went to its log: one line here says it is done
                        print(f"{child.label or child.out}: {_last_line(child.log)} (log: {child.log})", flush=True)
        return received[0] if received else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _resumed(child: Child, code: int, paths: list[Path], bundle) -> bool:
    """Starts `child` again if it was killed in the middle of an item (that item recorded as an error); else sets
    its final `code` and returns False."""
    if child.resumes and code == 5:  # resumed after the last item crashed: nothing was left to run
        child.code = 1
        return False
    if code >= 0 or not (child.out / "results.json").exists():
        child.code = code
        return False
    lost = bundle.unfinished(child.out)
    if not lost or child.resumes >= MAX_RESUMES:
        child.code = 1
        return False
    how = f"the pytest process was killed by {signal.Signals(-code).name}"
    print(f"qdq run: {how} while running {lost[0]}; recorded as an error, resuming", file=sys.stderr)
    _record_lost(child, lost, how, paths)
    child.resumes += 1
    child.start()
    return True


def _last_line(log: Path) -> str:
    """pytest's summary line, the last of its log."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip("= ") if lines else "no output"


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: `kill -9 qdq` does not orphan the run
    except Exception:
        pass


def _record_lost(child: Child, nodeids: list[str], how: str, paths: list[Path]) -> None:
    """An error record (and an Allure result) for each item the dead process was running."""
    from harness.results import bundle
    from harness.items import RunState, identify
    from harness.engine.run import Record

    state = RunState(
        backends=[], out_dir=child.out, root=None, is_worker=False, case_paths=[Path(os.path.abspath(p)) for p in paths]
    )
    for nodeid in nodeids:
        case_id, backend = identify(nodeid, Path.cwd(), state)
        message = f"{how} while running this item (a crash in a backend that runs in the pytest process)"
        bundle.append_record(child.out, Record.crash(nodeid, case_id, backend, message).as_dict())
        if child.allure is not None and child.allure.is_dir():
            from harness.report.allure import write_crash_result

            write_crash_result(child.allure, nodeid, message)

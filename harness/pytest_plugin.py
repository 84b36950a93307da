"""The engine: a pytest plugin (entry point `pytest11`) that turns case files into items.

A YAML file under a folder named `cases` (or under `--qdq-root`) is a case file. Each case gives one item per
selected backend, named `<case>[<backend>]`, plus `<case>[cross-backend]` when two or more backends are selected.
All items of a case carry `xdist_group(<case id>)`, so `-n auto --dist loadgroup` keeps a case on one worker and the
cross-backend item sees every backend's outputs. A file that does not load becomes one failing item whose message
is `file:line: problem`; every other case still runs.

Hooks, in order: pytest_addoption, pytest_configure (run state in `config.stash`, no globals), pytest_collect_file,
Item.runtest (execute + verdict), pytest_runtest_logreport (records reach the bundle on the controller, also from
xdist workers, through `user_properties`), pytest_sessionfinish (the bundle is completed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import backend as backends_mod
from . import bundle as bundle_mod
from .caseload import CASE_SUFFIXES, CaseFileError, check_file, find_root
from .case import Case
from .execute import Outcome, execute
from .isolation import WorkerPool, timeout_for
from .verdict import Verdict, judge, make
from .watchdog import BackendTimeout, deadline
from .yamlread import read_bytes

RECORD_KEY = "qdq_record"
CROSS_BACKEND = "cross-backend"


@dataclass
class RunState:
    backends: list[str]
    out_dir: Path | None
    root: Path | None
    tier: str
    is_worker: bool
    case_paths: list[Path] = field(default_factory=list)  # folders/files of cases not under a folder named `cases`
    lock: object = None  # the open file holding the bundle folder's flock
    writer: bundle_mod.BundleWriter | None = None
    outcomes: dict[str, dict[str, tuple[str | None, Outcome]]] = field(default_factory=dict)  # case id -> backend -> (version, outcome)
    references: dict[str, Outcome] = field(default_factory=dict)
    workers: WorkerPool = field(default_factory=WorkerPool)  # processes of isolated backends

    def execute(self, name: str, case: Case) -> Outcome:
        backend = backends_mod.instance(name)
        if backend.isolated:
            return self.workers.execute(name, backend, case)
        return self._in_process(name, backend, case, lambda: execute(backend, case))

    def skip_reason(self, name: str, case: Case) -> str | None:
        backend = backends_mod.instance(name)
        if backend.isolated:
            return self.workers.skip_reason(name, backend, case)
        try:
            with deadline(timeout_for(backend), f"{name} (in the pytest process) checking {case.id}"):
                return backend.skip_reason(case)
        except (Exception, BackendTimeout):
            return None  # its run meets (and reports) the same problem

    @staticmethod
    def _in_process(name: str, backend, case: Case, call) -> Outcome:
        start = time.perf_counter()
        try:
            with deadline(timeout_for(backend), f"{name} (in the pytest process) running {case.id}"):
                return call()
        except BackendTimeout as exc:
            return Outcome(crash=str(exc), seconds=time.perf_counter() - start)

    def reference(self, case: Case) -> Outcome:
        """The numpy reference's outcome for a case, computed once per worker."""
        if case.id not in self.references:
            self.references[case.id] = self.execute("numpy", case)
        return self.references[case.id]


STATE = pytest.StashKey[RunState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qdq", "qdq-harness conformance cases")
    group.addoption("--qdq-backend", action="append", default=[], metavar="NAME",
                    help="run cases on this backend (repeatable); default: every installed backend")
    group.addoption("--qdq-out", default=None, metavar="DIR", help="write the results bundle to DIR")
    group.addoption("--qdq-root", default=None, metavar="DIR",
                    help="cases root (data files must stay inside it); default: the nearest folder named 'cases'")
    group.addoption("--qdq-cases", action="append", default=[], metavar="PATH",
                    help="a folder (or file) of case files not under a folder named 'cases' (repeatable; qdq run "
                         "passes every path it is given)")
    group.addoption("--qdq-tier", default="quick", choices=("quick", "full"),
                    help="quick: CI's cases; full: also cases marked `tier: full` (nightly)")
    group.addoption("--qdq-resume", action="store_true",
                    help="continue the bundle in --qdq-out: items it already records are not run again")
    group.addoption("--qdq-lock-held", action="store_true", help=argparse.SUPPRESS)  # qdq run holds the lock


def pytest_configure(config: pytest.Config) -> None:
    known = list(backends_mod.discover())
    chosen = config.getoption("--qdq-backend") or known
    unknown = [b for b in chosen if b not in known]
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {unknown}; installed: {known}")
    out = config.getoption("--qdq-out")
    root = config.getoption("--qdq-root")
    state = RunState(backends=list(dict.fromkeys(chosen)), out_dir=Path(out).resolve() if out else None,
                     root=_absolute(root) if root else None, tier=config.getoption("--qdq-tier"),
                     is_worker=hasattr(config, "workerinput"),
                     case_paths=[_absolute(p) for p in config.getoption("--qdq-cases")])
    config.stash[STATE] = state
    if state.out_dir and not state.is_worker:
        problem = out_dir_problem(state.out_dir)
        if problem:
            raise pytest.UsageError(problem)
        if not config.getoption("--qdq-lock-held"):
            try:
                state.lock = bundle_mod.lock(state.out_dir)
            except bundle_mod.BundleInUse as exc:
                raise pytest.UsageError(str(exc)) from None
        state.writer = bundle_mod.BundleWriter(state.out_dir, describe_backends(state.backends),
                                               resume=config.getoption("--qdq-resume"))
        config.pluginmanager.register(BundleReporter(state.writer, config), "qdq-bundle")
        _terminate_like_interrupt()


def out_dir_problem(out: Path) -> str | None:
    """Why a bundle cannot be written to `out` (one line), or None."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder"
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        return f"--out {out}: {probe} is not writable"
    return None


def _terminate_like_interrupt() -> None:
    """SIGTERM (a CI timeout, `kill`) ends the run as Ctrl-C does: the bundle is completed as partial."""
    if threading.current_thread() is not threading.main_thread():
        return

    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """With --qdq-resume, items the bundle already records are deselected (only on the controller: workers have no
    writer and receive what the controller schedules)."""
    state = config.stash.get(STATE, None)
    if state is None or state.writer is None or not config.getoption("--qdq-resume"):
        return
    done = state.writer.recorded()
    keep = [item for item in items if _stable(item.nodeid) not in done]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if _stable(item.nodeid) in done])
        items[:] = keep


def _stable(nodeid: str) -> str:
    """The node id without the `@group` suffix xdist's loadgroup appends: the same with and without `-n`."""
    return nodeid.split("@")[0] if "]@" in nodeid else nodeid


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        state.workers.close()
        if state.lock is not None:
            state.lock.close()


def describe_backends(names: list[str]) -> dict[str, dict]:
    out = {}
    for name in names:
        backend = backends_mod.instance(name)
        avail = backends_mod.availability(name)
        out[name] = {"version": avail.version, "available": avail.available, "reason": avail.reason,
                     "product": backend.product, "description": backend.description}
        details = getattr(backend, "details", None)
        if callable(details):
            out[name]["details"] = details()
    return out


def _absolute(path) -> Path:
    """Absolute, not resolved: a symlinked case file belongs to the folder it was found in."""
    return Path(os.path.abspath(path))


def _in_case_folder(path: Path, state: RunState) -> bool:
    here = _absolute(path)
    if state.root and here.is_relative_to(state.root):
        return True
    if any(here == p or here.is_relative_to(p) for p in state.case_paths):
        return True
    return any(parent.name == "cases" for parent in here.parents) or here.name == "cases"


def _is_case_file(path: Path, state: RunState) -> bool:
    return path.suffix in CASE_SUFFIXES and _in_case_folder(path, state)


def root_for(path: Path, state: RunState) -> Path:
    """The cases root of a file (where its data must stay; what its id is relative to): `--qdq-root`, else the
    nearest folder named `cases`, else the `--qdq-cases` folder it was found in, else its own folder."""
    here = _absolute(path)
    if state.root and here.is_relative_to(state.root):
        return state.root
    if any(parent.name == "cases" for parent in here.parents):
        return find_root(here)
    folders = [p for p in state.case_paths if here.is_relative_to(p) and p != here]
    return max(folders, key=lambda p: len(p.parts)) if folders else here.parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config):
    """Never follow a symlinked folder of cases (a link to `..` would run the tree again and again); `qdq validate`
    walks the same way."""
    state = config.stash.get(STATE, None)
    if state and collection_path.is_symlink() and collection_path.is_dir() and _in_case_folder(collection_path, state):
        return True
    return None


def pytest_collect_directory(path: Path, parent: pytest.Collector):
    state = parent.config.stash[STATE]
    if _in_case_folder(path, state):
        return CasesDir.from_parent(parent, path=path)
    return None


class CasesDir(pytest.Dir):
    """pytest's folder collector, plus an item for anything named *.yaml that is not a regular file (a FIFO, a
    device): pytest would skip it in silence; it is reported, never opened."""

    def collect(self):
        yield from super().collect()
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            if Path(entry.name).suffix in CASE_SUFFIXES and not entry.is_file() and not entry.is_dir():
                yield CaseFile.from_parent(self, path=Path(entry.path))


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    state = parent.config.stash[STATE]
    if _is_case_file(file_path, state):
        return CaseFile.from_parent(parent, path=file_path)
    return None


def _local_name(case: Case) -> str:
    parts = case.id.split("::")
    local = parts[1] if len(parts) > 1 and not case.params else parts[0].rsplit("/", 1)[-1]
    if case.params:
        named = parts[1] if len(parts) == 3 else parts[0].rsplit("/", 1)[-1]
        local = f"{named}({','.join(f'{k}={v}' for k, v in case.params.items())})"
    return local


def identify(nodeid: str, rootdir: Path, state: RunState) -> tuple[str, str | None]:
    """(case id, backend) of an item known only by its node id (an item whose process died before it could say):
    its file is loaded again and the item name matched. Falls back to the file's path when nothing matches."""
    file_part, _, name = _stable(nodeid).partition("::")
    backend = name.rsplit("[", 1)[-1].rstrip("]") if name.endswith("]") else None
    local = name.rsplit("[", 1)[0]
    path = rootdir / file_part
    cases, _ = check_file(path, root_for(path, state))
    for case in cases:
        if _local_name(case) == local:
            return case.id, backend
    return file_part, backend


class CaseFile(pytest.File):
    def collect(self):
        state = self.config.stash[STATE]
        cases, errors = check_file(self.path, root_for(self.path, state))
        for error in errors:
            yield InvalidCaseItem.from_parent(self, name=f"{self.path.stem}[invalid-case-file:{error.line}]", error=error)
        for case in cases:
            if case.tier == "full" and state.tier != "full":
                continue
            local = _local_name(case)
            for name in state.backends:
                yield CaseItem.from_parent(self, name=f"{local}[{name}]", case=case, backend_name=name)
            if len(state.backends) >= 2:
                yield CrossBackendItem.from_parent(self, name=f"{local}[{CROSS_BACKEND}]", case=case, backend_name=CROSS_BACKEND)


class CaseFailure(AssertionError):
    """A verdict of fail: the report shows its message, prefixed by the verdict kind."""


class BackendCrash(Exception):
    """A verdict of error: the backend or harness crashed (reported as 'broken', not 'failed')."""


def _allure_active(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("allure_pytest") and bool(config.getoption("allure_report_dir", None))


class _QdqItem(pytest.Item):
    def _record(self, verdict: Verdict, **extra) -> None:
        self.user_properties.append((RECORD_KEY, json.dumps({**self._record_base(), **verdict.as_dict(), **extra},
                                                            default=bundle_mod.json_default)))

    def _record_base(self) -> dict:
        return {"nodeid": self.stable_nodeid}

    @property
    def stable_nodeid(self) -> str:
        return _stable(self.nodeid)

    def _conclude(self, verdict: Verdict) -> None:
        if verdict.status == "pass":
            return
        if verdict.status == "skip":
            pytest.skip(verdict.reason)
        if verdict.status == "xfail":
            pytest.xfail(verdict.message)
        if verdict.status == "error":
            raise BackendCrash(verdict.message + "\n" + verdict.metrics.get("traceback", ""))
        raise CaseFailure(verdict.message)

    def repr_failure(self, excinfo, style=None):
        # A verdict's message is the whole story: no pytest traceback (long ones cost 40% of a run and fill the
        # Allure history), also for declared deviations, which pytest reports through xfail.
        if isinstance(excinfo.value, (CaseFailure, BackendCrash, pytest.xfail.Exception)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


class InvalidCaseItem(_QdqItem):
    def __init__(self, *, error: CaseFileError, **kw):
        super().__init__(**kw)
        self.error = error
        root = root_for(self.path, self.config.stash[STATE])
        here = _absolute(self.path)
        # The file's path under its cases root, suffix kept: `x.yml` beside `x.yaml` stay two rows.
        self.file_id = here.relative_to(root).as_posix() if here.is_relative_to(root) else self.path.name

    def runtest(self) -> None:
        verdict = make("invalid-case-file", str(self.error))
        self._record(verdict, case_id=self.file_id, backend=None)
        if _allure_active(self.config):
            import allure

            allure.dynamic.title(f"invalid case file {self.path.name}")
            allure.dynamic.feature("invalid case files")
            data, refusal = read_bytes(self.path)  # never opens a FIFO, never reads past the size limit
            allure.attach(data.decode(errors="replace") if data is not None else refusal, name=self.path.name,
                          attachment_type=allure.attachment_type.TEXT)
        self._conclude(verdict)

    def reportinfo(self):
        return self.path, self.error.line - 1, f"invalid case file {self.path.name}"


class CaseItem(_QdqItem):
    def __init__(self, *, case: Case, backend_name: str, **kw):
        super().__init__(**kw)
        self.case = case
        self.backend_name = backend_name
        self.add_marker(pytest.mark.xdist_group(case.id))
        self.extra_keyword_matches.update(case.tags)  # `-k int8` selects by tag

    def reportinfo(self):
        return self.path, self.case.line - 1, f"{self.case.id} on {self.backend_name}"

    def _record_base(self) -> dict:
        case = self.case
        return {
            "nodeid": self.stable_nodeid, "case_id": case.id, "backend": self.backend_name,
            "case": {"title": case.title, "source": case.source, "tags": case.tags, "severity": case.severity,
                     "file": case.file.resolve().relative_to(case.root.parent).as_posix()
                     if case.file.resolve().is_relative_to(case.root.parent) else case.file.name,
                     "file_hash": case.file_hash, "content_hash": case.content_hash, "params": case.params},
        }

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        verdict, version, extra = self._run(state)
        self._record(verdict, backend_version=version, **{k: v for k, v in extra.items() if k != "outcome"})
        if _allure_active(self.config):
            self._report(verdict, version, extra)
        self._conclude(verdict)

    def _report(self, verdict: Verdict, version: str | None, extra: dict) -> None:
        from . import report

        report.label_item(self.case, self.backend_name, version)
        report.attach_case(self.case, self.backend_name, extra.get("outcome"), verdict, version)

    def _run(self, state: RunState) -> tuple[Verdict, str | None, dict]:
        avail = backends_mod.availability(self.backend_name)
        if not avail.available:
            return make("skipped", f"{self.backend_name} unavailable: {avail.reason}"), avail.version, {}
        requirement = self.case.unmet_requirement(self.backend_name, avail.version)
        if requirement:
            return make("skipped", f"needs {self.backend_name} {requirement.selector.version} (have {avail.version}): "
                                   f"{requirement.reason}"), avail.version, {}
        lacking = state.skip_reason(self.backend_name, self.case)
        if lacking:
            return make("skipped", lacking), avail.version, {}
        outcome = state.execute(self.backend_name, self.case)
        state.outcomes.setdefault(self.case.id, {})[self.backend_name] = (avail.version, outcome)
        verdict = judge(self.case, self.backend_name, avail.version, outcome, reference=lambda: state.reference(self.case))
        extra = {"seconds": round(outcome.seconds, 6), "inputs_hash": bundle_mod.inputs_hash(outcome.inputs),
                 "error": outcome.error.as_dict() if outcome.error else None, "details": outcome.details,
                 "outcome": outcome}
        if state.out_dir and outcome.outputs is not None:
            path = bundle_mod.save_outputs(state.out_dir, self.case.id, self.backend_name, outcome.outputs)
            extra["outputs_file"] = path.relative_to(state.out_dir).as_posix()
        return verdict, avail.version, extra


class CrossBackendItem(CaseItem):
    """Every pair of backends that produced outputs for this case, compared (harness/crossdiff.py).

    With `--dist loadgroup` the case's backend items ran earlier on this worker and their outcomes are in the run
    state. Any that are missing (another scheduler, or an xdist/pytest pair whose grouping is broken) are executed
    again here, in isolation workers (a backend that crashed its item must not crash this one), so the diff never
    depends on scheduling; the record lists them under `recomputed`.
    """

    def _run(self, state: RunState) -> tuple[Verdict, str | None, dict]:
        from .crossdiff import cross_backend_verdict

        outcomes = state.outcomes.setdefault(self.case.id, {})
        recomputed = []
        for name in state.backends:
            if name in outcomes:
                continue
            avail = backends_mod.availability(name)
            if not avail.available or self.case.unmet_requirement(name, avail.version):
                continue
            if state.skip_reason(name, self.case):
                continue
            # Always in a worker process: the backend's own item may have crashed this process's predecessor.
            outcomes[name] = (avail.version, state.workers.execute(name, backends_mod.instance(name), self.case))
            recomputed.append(name)
        verdict, diffs = cross_backend_verdict(self.case, outcomes)
        return verdict, None, {"diffs": diffs, "recomputed": recomputed, "outcome": outcomes}

    def _report(self, verdict: Verdict, version: str | None, extra: dict) -> None:
        """Labels, the case, and for each disagreeing pair its table and heatmap."""
        from . import report

        report.label_item(self.case, self.backend_name, None)
        report.attach_case(self.case, self.backend_name, None, verdict)
        outcomes = extra.get("outcome", {})
        differing = [d for d in extra.get("diffs", []) if not d["agree"] and not d["shape_mismatch"]]
        if differing:  # a passing cross-backend item says what it found, declared or not
            import allure

            allure.dynamic.description("\n".join(
                f"- {d['backends'][0]} vs {d['backends'][1]} on `{d['output']}`: {d['differing']} of {d['total']} "
                f"element{'s' if d['total'] != 1 else ''} differ, max |diff| {d['max_abs']:.6g}"
                + (f" ({d['max_steps']:g} steps)" if d["max_steps"] is not None else "")
                + (f"; declared: {d['declared'][0]}" if d.get("declared") else "; UNDECLARED") for d in differing))
            if verdict.status == "pass":
                allure.dynamic.tag("declared disagreements")
        for d in differing:
            a, b = d["backends"]
            oa, ob = outcomes[a][1], outcomes[b][1]
            report.attach_difference(f"{d['output']} ({a} vs {b})", ob.outputs[d["output"]], oa.outputs[d["output"]],
                                     d["first"], b, a)


class BundleReporter:
    """Registered on the controller when `--qdq-out` is given: records reach the bundle as reports arrive; at the
    end the bundle is completed, the summaries written, and the Allure results get their report-level files."""

    def __init__(self, writer: bundle_mod.BundleWriter, config: pytest.Config):
        self.writer = writer
        self.config = config

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.writer.started(_stable(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records = [json.loads(v) for k, v in report.user_properties if k == RECORD_KEY]
        if report.when == "call":
            for record in records:
                self.writer.add(record)
        if report.failed and not records and report.when != "teardown":  # xdist reports a crash with when="???"
            # No record: the item died before writing one (an xdist worker crash, a setup error).
            nodeid = _stable(report.nodeid)
            case_id, backend = identify(nodeid, self.config.rootpath, self.config.stash[STATE])
            self.writer.add({"nodeid": nodeid, "case_id": case_id, "backend": backend,
                             "status": "error", "kind": "backend-crash", "reason": str(report.longrepr)[-2000:],
                             "metrics": {}})
            if _allure_active(self.config) and getattr(report, "node", None) is not None:
                from . import report as report_mod  # an xdist worker died: allure-pytest wrote nothing for it

                report_mod.write_crash_result(Path(self.config.getoption("allure_report_dir")), report.nodeid,
                                              str(report.longrepr))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        complete = exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR) and not session.shouldstop
        self.writer.finish(int(exitstatus), complete)
        from . import summary

        summary.write(self.writer.out_dir, self.writer.doc)
        if _allure_active(self.config):
            from . import report as report_mod

            state = self.config.stash[STATE]
            alluredir = Path(self.config.getoption("allure_report_dir"))
            report_mod.write_results_extras(alluredir, self.writer.doc["backends"], self.writer.doc["environment"],
                                            state.root)
            report_mod.mark_declared_deviations(alluredir)



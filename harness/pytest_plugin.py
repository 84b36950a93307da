"""The engine: a pytest plugin (entry point `pytest11`) that turns case files into items.

A YAML file under a folder named `cases` (or under `--qdq-root`, or under a path given with `--qdq-cases`) is a
case file. Each case gives one item per selected backend, named `<local>[<backend>]` (`<local>`: the case id after
its file's part; a matrix's `::k=v,...` is written `(k=v,...)` because pytest reads `::` as a separator). A file
that does not load becomes one failing item per problem, `file:line: problem`; every other case still runs.

Each item runs `harness.run.Executor.run` (the one run path) and hands its `Record` to the controller. After the
last item, the controller compares every pair of backends per case from the outputs the run stored
(harness/crossdiff.py), as `<local>[cross-backend]` records: no item depends on another having run in the same
process, so any scheduler and any number of xdist workers give the same bundle.

Hooks, in order: pytest_addoption, pytest_configure (one RunConfig; run state in `config.stash`, no globals),
pytest_collect_directory/_file, Item.runtest, pytest_runtest_logreport (records reach the bundle on the controller,
also from xdist workers, through `user_properties`), pytest_sessionfinish (cross-backend diffs, the bundle
completed, summaries, Allure extras).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from . import backend as backends_mod
from . import bundle as bundle_mod
from . import ownership, skips
from .case import Case
from .caseload import CASE_SUFFIXES, CaseFileError, check_file, find_root
from .parsecache import ParseCache
from .config import DEFAULT_REFERENCE, RunConfig, default_cache, default_timeout
from .run import CROSS_BACKEND, Executor, Record
from .verdict import Verdict, make
from .bundle import out_dir_problem
from .yamlread import read_bytes

RECORD_KEY = "qdq_record"
RESUME_DONE = ".resume-done.json"  # the items a resumed bundle holds, as the controller saw them at the start


@dataclass
class RunState:
    backends: list[str]
    out_dir: Path | None
    root: Path | None
    is_worker: bool
    config: RunConfig = field(default_factory=RunConfig.defaults)
    case_paths: list[Path] = field(default_factory=list)  # folders/files of cases not under a folder named `cases`
    lock: object = None  # the open file holding the bundle folder's flock
    writer: bundle_mod.BundleWriter | None = None
    executor: Executor | None = None
    scratch: Path | None = None  # a temporary bundle folder when no --qdq-out is given (the diff reads outputs)
    parse_cache: ParseCache | None = None  # parsed case files kept across runs and processes
    folders: dict = field(default_factory=dict)  # folder -> (in a case folder?, cases root): the same for its files
    case_ids: dict = field(default_factory=dict)  # case id -> (file, line) of the first case collected with it

    @property
    def tier(self) -> str:
        return self.config.tier


STATE = pytest.StashKey[RunState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qdq", "qdq-harness conformance cases")
    group.addoption(
        "--qdq-backend",
        action="append",
        default=[],
        metavar="NAME",
        help="run cases on this backend (repeatable); default: every installed backend",
    )
    group.addoption("--qdq-out", default=None, metavar="DIR", help="write the results bundle to DIR")
    group.addoption(
        "--qdq-root",
        default=None,
        metavar="DIR",
        help="cases root (data files must stay inside it); default: the nearest folder named 'cases'",
    )
    group.addoption(
        "--qdq-cases",
        action="append",
        default=[],
        metavar="PATH",
        help="a folder (or file) of case files not under a folder named 'cases' (repeatable; qdq run "
        "passes every path it is given)",
    )
    group.addoption(
        "--qdq-tier",
        default="quick",
        choices=("quick", "full"),
        help="quick: CI's cases; full: also cases marked `tier: full` (nightly)",
    )
    group.addoption(
        "--qdq-opset",
        type=int,
        default=None,
        metavar="N",
        help="ONNX opset for the ONNX-based backends (default: the lowest that expresses each case)",
    )
    group.addoption(
        "--qdq-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds a backend may take on one case (default: $QDQ_BACKEND_TIMEOUT, else the backend's own)",
    )
    group.addoption(
        "--qdq-cache",
        default=None,
        metavar="DIR",
        help="cache folder for parsed case files, engines and timing caches (default: $QDQ_CACHE, else "
        "~/.cache/qdq-harness)",
    )
    group.addoption(
        "--qdq-no-parse-cache",
        action="store_true",
        help="read every case file afresh (default: an unchanged file's parsed cases are taken from "
        "the cache folder's parsed.sqlite3)",
    )
    group.addoption(
        "--qdq-reference",
        default=DEFAULT_REFERENCE,
        metavar="NAME",
        help="the backend `expect: reference` compares against (default: the installed backend that "
        "declares it models the documented contract)",
    )
    group.addoption(
        "--qdq-tag",
        action="append",
        default=[],
        metavar="TAG",
        help="run only cases carrying this tag (repeatable: any of them); invalid case files always run",
    )
    group.addoption(
        "--qdq-resume",
        action="store_true",
        help="continue the bundle in --qdq-out: items it already records are not run again",
    )
    group.addoption(
        "--qdq-output-budget",
        default=None,
        metavar="SIZE",
        help="bytes of stored outputs for the whole run, e.g. 8G (default: 16G or half the free disk, "
        "whichever is less); a case whose outputs do not fit is that case's error",
    )
    group.addoption(
        "--qdq-force",
        action="store_true",
        help="write the bundle into --qdq-out even when it holds files the harness did not write",
    )
    group.addoption("--qdq-lock-held", action="store_true", help=argparse.SUPPRESS)  # qdq run holds the lock


def run_config(config: pytest.Config) -> RunConfig:
    """The run configuration, from pytest's options (their defaults from the environment, harness/config.py)."""
    from .budget import parse_size

    timeout = config.getoption("--qdq-timeout")
    budget = config.getoption("--qdq-output-budget")
    try:
        budget = parse_size(budget) if budget is not None else None
    except ValueError:
        raise pytest.UsageError(f"--qdq-output-budget {budget!r}: give a size such as 8G, 500M or 1000000") from None
    return RunConfig(
        opset=config.getoption("--qdq-opset"),
        timeout_s=timeout if timeout is not None else default_timeout(),
        cache_dir=config.getoption("--qdq-cache") or default_cache(),
        tier=config.getoption("--qdq-tier"),
        reference=config.getoption("--qdq-reference"),
        output_budget=budget,
    )


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too: a run without xdist (`-p no:xdist`) still marks items with it.
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's loadgroup scheduling group")
    known = list(backends_mod.discover())
    chosen = config.getoption("--qdq-backend") or known
    unknown = [b for b in chosen if b not in known]
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {unknown}; installed: {known}")
    run = run_config(config)
    if not run.reference:
        found = backends_mod.contract_model()
        if found is None:
            raise pytest.UsageError(
                "no installed backend declares it models the documented contract; "
                "name the reference with --qdq-reference NAME"
            )
        run = replace(run, reference=found)
    if run.reference not in known:
        raise pytest.UsageError(f"--qdq-reference {run.reference!r} is not an installed backend; installed: {known}")
    is_worker = hasattr(config, "workerinput")
    out = config.workerinput.get("qdq_out") if is_worker else config.getoption("--qdq-out")
    root = config.getoption("--qdq-root")
    state = RunState(
        backends=list(dict.fromkeys(chosen)),
        out_dir=Path(out).resolve() if out else None,
        root=_absolute(root) if root else None,
        is_worker=is_worker,
        config=run,
        case_paths=[_absolute(p) for p in config.getoption("--qdq-cases")],
    )
    config.stash[STATE] = state
    if not config.getoption("--qdq-no-parse-cache"):
        state.parse_cache = ParseCache(run.cache / "parsed.sqlite3")
        if not is_worker:
            state.parse_cache.prune()
    for name in dict.fromkeys([*state.backends, run.reference]):
        try:
            backends_mod.instance(name).configure(run)
        except ValueError as exc:  # a backend refuses the configuration (an opset it cannot write)
            raise pytest.UsageError(f"{name}: {exc}") from None
    if not is_worker:
        if state.out_dir is None:  # outputs are stored even then: the cross-backend diff reads them
            state.scratch = state.out_dir = Path(tempfile.mkdtemp(prefix="qdq-run-"))
        problem = out_dir_problem(state.out_dir)
        if problem:
            raise pytest.UsageError(problem)
        if not config.getoption("--qdq-lock-held"):  # else `qdq run` checked the folder and holds its lock
            if state.scratch is None and not config.getoption("--qdq-force"):
                problem = ownership.problem(state.out_dir, ownership.BUNDLE_MARKER, "a results bundle", "--qdq-out")
                if problem:
                    raise pytest.UsageError(problem)
            try:
                state.lock = bundle_mod.lock(state.out_dir)
            except bundle_mod.BundleInUse as exc:
                raise pytest.UsageError(str(exc)) from None
            ownership.claim(state.out_dir, ownership.BUNDLE_MARKER, "pytest --qdq-out")
        state.writer = bundle_mod.BundleWriter(
            state.out_dir,
            describe_backends(state.backends),
            resume=config.getoption("--qdq-resume"),
            run_config=run.as_dict(),
        )
        (state.out_dir / RESUME_DONE).write_text(json.dumps(sorted(state.writer.recorded())))
        from . import budget

        budget.start(state.out_dir, run.output_budget, resume=config.getoption("--qdq-resume"))
        config.pluginmanager.register(BundleReporter(state, config), "qdq-bundle")
        _terminate_like_interrupt()
    state.executor = Executor(run, state.out_dir)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, on the controller: each worker stores its outputs in the controller's bundle folder."""
    state = node.config.stash.get(STATE, None)
    if state is not None and state.out_dir is not None:
        node.workerinput["qdq_out"] = str(state.out_dir)


def _terminate_like_interrupt() -> None:
    """SIGTERM (a CI timeout, `kill`) ends the run as Ctrl-C does: the bundle is completed as partial."""
    if threading.current_thread() is not threading.main_thread():
        return

    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """--qdq-tag keeps the cases carrying one of the tags. With --qdq-resume, items the bundle already records are
    deselected, identically in every process (from the list the controller wrote before any worker started)."""
    state = config.stash.get(STATE, None)
    tags = set(config.getoption("--qdq-tag"))
    if state is not None and tags:
        off = [i for i in items if isinstance(i, CaseItem) and not tags & set(i.case.tags)]
        if off:
            config.hook.pytest_deselected(items=off)
            items[:] = [i for i in items if not (isinstance(i, CaseItem) and not tags & set(i.case.tags))]
    if state is None or state.out_dir is None or not config.getoption("--qdq-resume"):
        return
    marker = state.out_dir / RESUME_DONE
    done = set(json.loads(marker.read_text())) if marker.exists() else set()
    keep = [item for item in items if _stable(item.nodeid) not in done]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if _stable(item.nodeid) in done])
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session):
    """Collection makes objects that live until the session ends (cases, items): the garbage collector's full passes,
    triggered again and again as they grow, would walk all of them each time (a third of collecting 10,000 files).
    It pauses while collecting, then they are set aside for good: its passes during the run, and pytest's own at
    exit, no longer walk them. The few reference cycles made while collecting (54 objects for 10,000 files) are kept
    with them: one sweep to free those would cost 0.4 s."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
        state = session.config.stash.get(STATE, None)
        if state is not None and state.parse_cache is not None:
            state.parse_cache.close()  # what this collection parsed, written in one transaction


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """A record travels once, with the call's report: not again with the teardown's (from an xdist worker, each
    report is serialized and sent to the controller)."""
    report = yield
    if call.when == "call" and isinstance(item, _QdqItem):
        item.user_properties[:] = [p for p in item.user_properties if p[0] != RECORD_KEY]
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The records and reports made while running live until the process ends, too: set aside like the collected
    ones (pytest's five full garbage-collector passes at exit walked all of them)."""
    gc.freeze()


def _stable(nodeid: str) -> str:
    """The node id without the `@group` suffix xdist's loadgroup appends: the same with and without `-n`."""
    return nodeid.split("@")[0] if "]@" in nodeid else nodeid


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        if state.executor is not None:
            state.executor.close()
        if state.parse_cache is not None:
            state.parse_cache.close()  # what the cross-backend diff read afresh
        if state.lock is not None:
            state.lock.close()
        if state.scratch is not None:
            shutil.rmtree(state.scratch, ignore_errors=True)


def describe_backends(names: list[str]) -> dict[str, dict]:
    out = {}
    for name in names:
        backend = backends_mod.instance(name)
        avail = backends_mod.availability(name)
        out[name] = {
            "version": avail.version,
            "available": avail.available,
            "reason": avail.reason,
            "product": backend.product,
            "description": backend.description,
            "isolated": backend.isolated,
        }
        details = backend.details()
        if details:
            out[name]["details"] = details
    return out


def _absolute(path) -> Path:
    """Absolute, not resolved: a symlinked case file belongs to the folder it was found in."""
    return Path(os.path.abspath(path))


def _folder_facts(folder: str, state: RunState) -> tuple[bool, Path]:
    """Whether files in this folder are cases, and their root: asked once per folder, not once per file."""
    facts = state.folders.get(folder)
    if facts is None:
        marker = Path(folder) / "\0"  # any name: a file's answers depend only on its folder (a file named in
        facts = state.folders[folder] = (_in_case_folder(marker, state), root_for(marker, state))  # --qdq-cases aside)
    return facts


def _in_case_folder(path: Path, state: RunState) -> bool:
    here = _absolute(path)
    if state.root and here.is_relative_to(state.root):
        return True
    if any(here == p or here.is_relative_to(p) for p in state.case_paths):
        return True
    return any(parent.name == "cases" for parent in here.parents) or here.name == "cases"


def _is_case_file(path: Path, state: RunState) -> bool:
    if path.suffix not in CASE_SUFFIXES:
        return False
    here = os.path.abspath(path)
    return _folder_facts(os.path.dirname(here), state)[0] or Path(here) in state.case_paths


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
        root = _folder_facts(os.path.dirname(os.path.abspath(self.path)), state)[1]
        cases, errors = check_file(self.path, root, state.parse_cache)
        for error in errors:
            yield InvalidCaseItem.from_parent(
                self, name=f"{self.path.stem}[invalid-case-file:{error.line}]", error=error
            )
        clashes = set()
        for case in cases:
            first = state.case_ids.setdefault(case.id, (self.path, case.line))
            if first[0] != self.path:  # two files, one id: one would take the other's record and outputs
                if case.line in clashes:
                    continue
                clashes.add(case.line)
                error = CaseFileError(
                    self.path,
                    case.line,
                    f"case id {case.id!r} is also the id of a case in "
                    f"{first[0]}:{first[1]}; one id, one case (rename one, or give --qdq-root)",
                )
                yield InvalidCaseItem.from_parent(
                    self, name=f"{self.path.stem}[invalid-case-file:{case.line}]", error=error
                )
                continue
            if case.tier == "full" and state.tier != "full":
                continue
            local = _local_name(case)
            for name in state.backends:
                yield CaseItem.from_parent(self, name=f"{local}[{name}]", case=case, backend_name=name)


class CaseFailure(AssertionError):
    """A verdict of fail: the report shows its message, prefixed by the verdict kind."""


class BackendCrash(Exception):
    """A verdict of error: the backend or harness crashed (reported as 'broken', not 'failed')."""


def _allure_active(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("allure_pytest") and bool(config.getoption("allure_report_dir", None))


def alluredir(config: pytest.Config) -> Path | None:
    return Path(config.getoption("allure_report_dir")) if _allure_active(config) else None


class _QdqItem(pytest.Item):
    def _record(self, record: Record) -> None:
        self.user_properties.append((RECORD_KEY, json.dumps(record.as_dict(), default=bundle_mod.json_default)))

    @property
    def stable_nodeid(self) -> str:
        return _stable(self.nodeid)

    def _conclude(self, verdict: Verdict) -> None:
        if verdict.status == "pass":
            return
        if verdict.status == "skip":
            pytest.skip(f"{skips.tag(verdict.skip_kind)} {verdict.reason}")
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
        self._record(Record.of(self.stable_nodeid, None, self.file_id, None, verdict))
        if _allure_active(self.config):
            import allure

            allure.dynamic.title(f"invalid case file {self.path.name}")
            allure.dynamic.feature("invalid case files")
            data, refusal = read_bytes(self.path)  # never opens a FIFO, never reads past the size limit
            allure.attach(
                data.decode(errors="replace") if data is not None else refusal,
                name=self.path.name,
                attachment_type=allure.attachment_type.TEXT,
            )
        self._conclude(verdict)

    def reportinfo(self):
        return self.path, self.error.line - 1, f"invalid case file {self.path.name}"


class CaseItem(_QdqItem):
    """One case on one backend: `Executor.run`, its record, its Allure result."""

    def __init__(self, *, case: Case, backend_name: str, **kw):
        super().__init__(**kw)
        self.case = case
        self.backend_name = backend_name
        self.add_marker(pytest.mark.xdist_group(case.id))  # cache locality only: no item needs another's state
        self.extra_keyword_matches.update(case.tags)  # `-k int8` selects by tag

    def reportinfo(self):
        return self.path, self.case.line - 1, f"{self.case.id} on {self.backend_name}"

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        verdict, version, outcome, extra = state.executor.run(self.case, self.backend_name)
        record = Record.of(
            self.stable_nodeid, self.case, self.case.id, self.backend_name, verdict, backend_version=version, **extra
        )
        record.source = {"path": str(_absolute(self.case.file)), "root": str(self.case.root)}
        self._record(record)
        if _allure_active(self.config):
            from . import report

            report.label_item(self.case, self.backend_name, version)
            report.attach_case(self.case, self.backend_name, outcome, verdict, version)
        self._conclude(verdict)


class BundleReporter:
    """On the controller: records reach the bundle as reports arrive; after the last item the cross-backend diffs
    are made from the stored outputs, the bundle is completed, the summaries written, and the Allure results get
    their report-level files."""

    def __init__(self, state: RunState, config: pytest.Config):
        self.state = state
        self.writer = state.writer
        self.config = config
        self.cross: list[dict] = []
        self.session: pytest.Session | None = None
        self.stopping: str | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.writer.started(_stable(nodeid))
        self._watch_disk()

    def _watch_disk(self) -> None:
        """Stop the run before the disk is full (a full disk breaks every writer, Allure's too): the bundle is kept,
        marked partial, and says why."""
        from .budget import low_on_disk

        problem = self.writer.disk_full or low_on_disk(self.state.out_dir)
        if problem and not self.stopping:
            self.stopping = problem
            self.writer.disk_full = problem
            self.session.shouldstop = problem
            dsession = self.config.pluginmanager.getplugin("dsession")  # pytest-xdist's controller
            if dsession is not None:
                dsession.shouldstop = problem

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and not report.failed:
            return  # the record came with the call's report (pytest_runtest_makereport keeps it off this one)
        texts = [v for k, v in report.user_properties if k == RECORD_KEY]
        if report.when == "call":
            for text in texts:
                self.writer.add(json.loads(text), text)
        if report.failed and not texts and report.when != "teardown":  # xdist reports a crash with when="???"
            # No record: the item died before writing one (an xdist worker crash, a setup error).
            nodeid = _stable(report.nodeid)
            case_id, backend = identify(nodeid, self.config.rootpath, self.state)
            self.writer.add(Record.crash(nodeid, case_id, backend, str(report.longrepr)).as_dict())
            if alluredir(self.config) and getattr(report, "node", None) is not None:
                from . import report as report_mod  # an xdist worker died: allure-pytest wrote nothing for it

                report_mod.write_crash_result(alluredir(self.config), report.nodeid, str(report.longrepr))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        complete = (
            exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
            and not session.shouldstop
            and not self.writer.disk_full
        )
        if complete and len(self.state.backends) >= 2:
            from .crossdiff import stored_cross_backend

            self.cross = stored_cross_backend(
                self.writer.doc["records"],
                self.writer.doc.get("_sources", {}),
                self.state.out_dir,
                self.state.backends,
                alluredir(self.config),
                self.state.parse_cache,
            )
            for record in self.cross:
                self.writer.add(record)
            if any(r["status"] in ("fail", "error") for r in self.cross) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.writer.finish(int(session.exitstatus), complete)
        if self.writer.disk_full:
            session.config.get_terminal_writer().line(
                f"qdq: {self.writer.disk_full}; the run stopped, what was written is kept, the bundle is partial",
                red=True,
            )
            return
        from . import summary

        summary.write(self.writer.out_dir, self.writer.doc)
        if alluredir(self.config):
            from . import report as report_mod

            report_mod.write_results_extras(
                alluredir(self.config), self.writer.doc["backends"], self.writer.doc["environment"], self.state.root
            )
            report_mod.mark_declared_deviations(alluredir(self.config))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.cross:
            return
        failing = [r for r in self.cross if r["status"] in ("fail", "error")]
        counts = {s: sum(1 for r in self.cross if r["status"] == s) for s in ("pass", "fail", "error", "skip")}
        terminalreporter.section(f"{CROSS_BACKEND} (from the stored outputs)")
        terminalreporter.line(", ".join(f"{n} {s}" for s, n in counts.items() if n))
        for r in failing:
            terminalreporter.line(f"FAILED {r['nodeid']} - {r['reason'][:500]}")

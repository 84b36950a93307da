"""The engine: a pytest plugin (entry point `pytest11`) that turns case files into items.

A YAML file under a folder named `cases` (or under `--qdq-root`, or under a path given with `--qdq-cases`) is a
case file. Each case gives one item per selected backend, named `<local>[<backend>]` (`<local>`: the case id after
its file's part; a matrix's `::k=v,...` is written `(k=v,...)` because pytest reads `::` as a separator). A file
that does not load becomes one failing item per problem, `file:line: problem`; every other case still runs.

Each item runs `harness.engine.run.Executor.run` (the one run path) and hands its `Record` to the controller. After the
last item, the controller compares every pair of backends per case from the outputs the run stored
(harness/engine/crossdiff.py), as `<local>[cross-backend]` records: no item depends on another having run in the same
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
import shutil
import signal
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from harness.engine import backend as backends_mod
from harness.results import bundle as bundle_mod
from harness.results import ownership
from harness.cases.parsecache import ParseCache
from harness.engine.options import add_arguments, values
from harness.engine.config import DEFAULT_REFERENCE, RunConfig, default_cache, default_timeout
from harness.engine.run import Executor
from harness.results.bundle import out_dir_problem
from harness.items import RECORD_KEY, RESUME_DONE, STATE, CaseFile, CasesDir, RunState, _is_case_file, _in_case_folder
from harness.items import alluredir, shard_takes_file
from harness.reporter import BundleReporter
from harness.items import CaseItem, _QdqItem, _absolute, _stable


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
    add_arguments(group, "--qdq-")  # the backend families' own options (the ONNX backends' opset)
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
    group.addoption(
        "--qdq-shard",
        default=None,
        metavar="K/N",
        help="run the K-th of N shares of the cases (each case with all its backends, the same share in every "
        "process): `qdq run -n N` runs N such processes side by side and merges their bundles",
    )
    group.addoption("--qdq-lock-held", action="store_true", help=argparse.SUPPRESS)  # qdq run holds the lock
    # qdq run merges the shares' bundles, then writes the summaries and the Allure results' report-level files once
    group.addoption("--qdq-report-later", action="store_true", help=argparse.SUPPRESS)


def shard_option(text: str | None) -> tuple[int, int] | None:
    """`--qdq-shard K/N` as (K - 1, N)."""
    if text is None:
        return None
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise pytest.UsageError(f"--qdq-shard {text!r}: give K/N with 1 <= K <= N, e.g. 1/2")
    return int(k) - 1, int(n)


def run_config(config: pytest.Config) -> RunConfig:
    """The run configuration, from pytest's options (their defaults from the environment, harness/engine/config.py)."""
    from harness.results.budget import parse_size

    timeout = config.getoption("--qdq-timeout")
    budget = config.getoption("--qdq-output-budget")
    try:
        budget = parse_size(budget) if budget is not None else None
    except ValueError:
        raise pytest.UsageError(f"--qdq-output-budget {budget!r}: give a size such as 8G, 500M or 1000000") from None
    return RunConfig(
        options=tuple(sorted(values(lambda name: config.getoption(f"--qdq-{name}")).items())),
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
        shard=shard_option(config.getoption("--qdq-shard")),
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
        from harness.results import budget

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
def pytest_sessionstart(session: pytest.Session) -> None:
    """After every plugin's pytest_configure (allure-pytest's registers its file logger there)."""
    state = session.config.stash.get(STATE, None)
    if state is not None and alluredir(session.config):
        import allure_commons

        from harness.report.allure_writer import take_over

        state.allure_writes = take_over(allure_commons.plugin_manager)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The records and reports made while running live until the process ends, too: set aside like the collected
    ones (pytest's five full garbage-collector passes at exit walked all of them). An xdist worker's result files
    are all written before it reports that it finished (xdist's hook wraps this one)."""
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.drain_allure_writes()
    gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        for writes in state.allure_writes:
            writes.close()
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


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    state = parent.config.stash[STATE]
    if _is_case_file(file_path, state) and (
        shard_takes_file(file_path, state) or parent.session.isinitpath(file_path)  # named: pytest must find it
    ):
        return CaseFile.from_parent(parent, path=file_path)  # (in another share it collects nothing)
    return None

"""`qdq run`: the pytest engine driven in a child process (resumed after a crash), then the report."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from harness.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from harness.engine.options import values


FULL_RUN_OUT = Path("reports/latest")


SUBSET_OUT = Path("reports/subset")


MAX_RESUMES = 50  # pytest processes one `qdq run` may start after crashes


def cmd_run(args) -> int:
    from harness.results import budget
    from harness.results import bundle
    from harness.results import ownership
    from harness.report import summary
    from harness.results.bundle import out_dir_problem

    paths = args.paths or [Path("cases")]
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        print(f"qdq run: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return EXIT_USAGE
    # A run of a few cases never replaces the full run's bundle and history unless --out says so.
    subset = bool(args.paths or args.backend or args.keyword or args.tag or args.tier != "quick")
    out = args.out or (SUBSET_OUT if subset else FULL_RUN_OUT)
    problem = out_dir_problem(out.resolve())
    if problem is None and not args.force:
        problem = ownership.problem(out, ownership.BUNDLE_MARKER, "a results bundle", "--out")
    if problem:
        print(f"qdq run: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        held = bundle.lock(out)  # held across resumes; the pytest processes are told it is held
        ownership.claim(out, ownership.BUNDLE_MARKER, "qdq run")
    except (bundle.BundleInUse, OSError) as exc:
        print(f"qdq run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if not args.resume:
            _keep_previous(out)
            # A fresh bundle: stale outputs of an earlier run must not mix with this one. history.jsonl stays.
            # (The driver cleans the Allure results: --clean-alluredir is unsafe under xdist.)
            for stale in ("outputs", "allure-results", "allure-report"):
                shutil.rmtree(out / stale, ignore_errors=True)
            for stale in ("results.json", bundle.JOURNAL):
                (out / stale).unlink(missing_ok=True)
        code, signalled = _run_pytest(_pytest_args(args, paths, out), out, paths, args.resume)
    finally:
        held.close()
    if signalled:
        print(
            f"qdq run: interrupted ({signal.Signals(signalled).name}); the bundle in {out} is partial", file=sys.stderr
        )
        return 128 + signalled
    full = budget.low_on_disk(out)
    if full:  # the run stopped itself before the disk filled up (or could not write): no report, no comparison
        print(
            f"qdq run: {full}; the run stopped, what was written is kept, the bundle in {out} is partial",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if code in (4, 5):  # pytest: usage error, no tests collected
        print("qdq run: " + ("no cases collected" if code == 5 else "usage error"), file=sys.stderr)
        return EXIT_USAGE
    results = out / "results.json"
    if not results.exists():
        return EXIT_FAILED
    doc = bundle.load(out)
    print()
    print(summary.terminal(doc))
    for line in summary.disagreement_lines(doc):
        print(line)
    _compare_with_previous(out)
    print(f"\nbundle: {results}  summary: {out / 'summary.md'}, {out / 'summary.html'}")
    if not args.no_report and _generate(out, args.history_from):
        from harness.report.html import result_links

        summary.write(out, doc, result_links(out / "allure-report" / "index.html"))  # cells link into the report
    failed = any(r["status"] in ("fail", "error") for r in doc["records"])
    return EXIT_FAILED if failed or code != 0 else EXIT_OK


def _keep_previous(out: Path) -> None:
    """The last run's bundle (results folded from its journal, and its outputs) moves to DIR/previous, so that
    this run is compared with it at the end."""
    from harness.results import bundle

    if not (out / "results.json").exists():
        return
    previous = out / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir(parents=True)
    try:
        bundle.write_json(previous / "results.json", bundle.load(out))
    except (ValueError, OSError):
        shutil.rmtree(previous, ignore_errors=True)  # an unreadable last run is no baseline
        return
    if (out / "outputs").exists():
        (out / "outputs").rename(previous / "outputs")


def _compare_with_previous(out: Path) -> None:
    """One line of `qdq compare DIR/previous DIR` (regressions listed), the whole comparison in DIR/compare.md.
    Informational: `qdq compare` is the command that gates."""
    from harness.results import bundlediff

    if not (out / "previous" / "results.json").exists():
        return
    try:
        comparison = bundlediff.compare(bundlediff.load(out / "previous"), bundlediff.load(out))
    except (ValueError, OSError, KeyError) as exc:
        print(f"against the previous run: not compared ({exc})")
        return
    counts = comparison.counts()
    print(
        "\nagainst the previous run: "
        + (", ".join(f"{n} {k}" for k, n in counts.items()) or "no change")
        + f" (details: {out / 'compare.md'})"
    )
    for change in comparison.changes:
        if change.kind == "regressed":
            print(
                f"  REGRESSED {change.case_id} [{change.backend}] {change.old} -> {change.new}: {change.detail[:200]}"
            )
    (out / "compare.md").write_text(bundlediff.markdown([comparison]))


def _pytest_args(args, paths: list[Path], out: Path) -> list[str]:
    pytest_args = [
        *map(str, paths),
        "--qdq-out",
        str(out),
        "--qdq-tier",
        args.tier,
        "-q",
        "--no-header",
        "-rfE",
        "-p",
        "no:cacheprovider",
        "--qdq-lock-held",
    ]
    if _has_allure_pytest():
        pytest_args += ["--alluredir", str(out / "allure-results")]
    for path in paths:  # any folder of case files can be run, named `cases` or not
        pytest_args += ["--qdq-cases", str(path)]
    for name in args.backend:
        pytest_args += ["--qdq-backend", name]
    if args.root:
        pytest_args += ["--qdq-root", str(args.root)]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    for tag in args.tag:
        pytest_args += ["--qdq-tag", tag]
    if args.workers:
        pytest_args += ["-n", str(args.workers), "--dist", "loadgroup"]
    else:
        pytest_args += ["-p", "no:xdist"]  # one process: not even xdist's import
    # The run never uses hypothesis's pytest plugin (a dev dependency for tests/): 60 ms of start-up saved.
    pytest_args += ["-p", "no:hypothesispytest"]
    for name, value in values(lambda name: getattr(args, name, None)).items():
        pytest_args += [f"--qdq-{name}", str(value)]  # one run configuration: `pytest --qdq-NAME` is the same run
    if args.resume:
        pytest_args.append("--qdq-resume")
    if args.no_parse_cache:
        pytest_args.append("--qdq-no-parse-cache")
    if args.output_budget:
        pytest_args += ["--qdq-output-budget", args.output_budget]
    return pytest_args


def _run_pytest(pytest_args: list[str], out: Path, paths: list[Path], resume: bool) -> tuple[int, int]:
    """pytest in a child process, resumed after it dies: an item that kills the process (a segfault in a backend
    running in process, the OOM killer) becomes that item's `error` record and the run goes on with the rest.
    Ctrl-C and SIGTERM are passed on once and end the run. Returns (pytest's exit code, the signal that ended it)."""
    from harness.results import bundle

    received: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum, frame):
        received.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for attempt in range(MAX_RESUMES + 1):
            args = pytest_args + (["--qdq-resume"] if attempt and "--qdq-resume" not in pytest_args else [])
            # Its own session: a Ctrl-C reaches it once, through `forward`; it dies with us (PR_SET_PDEATHSIG).
            child = subprocess.Popen(
                [sys.executable, "-m", "pytest", *args], start_new_session=True, preexec_fn=_die_with_parent
            )
            code = child.wait()
            if received:
                return code, received[0]
            if attempt and code == 5:  # resumed after the last item crashed: nothing was left to run
                return 1, 0
            if code >= 0 or not (out / "results.json").exists():
                return code, 0
            lost = bundle.unfinished(out)
            if not lost:
                return 1, 0
            how = f"the pytest process was killed by {signal.Signals(-code).name}"
            print(f"qdq run: {how} while running {lost[0]}; recorded as an error, resuming", file=sys.stderr)
            _record_lost(out, lost, how, paths)
        return 1, 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: `kill -9 qdq` does not orphan the run
    except Exception:
        pass


def _record_lost(out: Path, nodeids: list[str], how: str, paths: list[Path]) -> None:
    """An error record (and an Allure result) for each item the dead process was running."""
    from harness.results import bundle
    from harness.items import RunState, identify
    from harness.engine.run import Record

    state = RunState(
        backends=[], out_dir=out, root=None, is_worker=False, case_paths=[Path(os.path.abspath(p)) for p in paths]
    )
    for nodeid in nodeids:
        case_id, backend = identify(nodeid, Path.cwd(), state)
        message = f"{how} while running this item (a crash in a backend that runs in the pytest process)"
        bundle.append_record(out, Record.crash(nodeid, case_id, backend, message).as_dict())
        if (out / "allure-results").is_dir():
            from harness.report.allure import write_crash_result

            write_crash_result(out / "allure-results", nodeid, message)


def _has_allure_pytest() -> bool:
    # find_spec, not import: importing it here would stop pytest from rewriting its asserts (a warning every run)
    from importlib.util import find_spec

    return find_spec("allure_pytest") is not None


def _generate(out: Path, history_from: Path | None) -> bool:
    from harness.report.html import generate_html

    ok, where = generate_html(out, history_from)
    print(f"report: {where}" if ok else f"report: not generated: {where}")
    return ok

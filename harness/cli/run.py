"""`qdq run`: the pytest engine driven in child processes (one, or `-n N` each running a share of the cases; resumed
after a crash), then the report."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from harness.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from harness.cli.children import Child
from harness.cli.children import run as run_children
from harness.engine.options import values
from harness.results import shards


FULL_RUN_OUT = Path("reports/latest")


SUBSET_OUT = Path("reports/subset")


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
    count = _share_count(args, out)
    if count is None:
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
            for stale in ("outputs", "allure-results", "allure-report", shards.SHARDS):
                shutil.rmtree(out / stale, ignore_errors=True)
            for stale in ("results.json", bundle.JOURNAL):
                (out / stale).unlink(missing_ok=True)
        children = _children(args, paths, out, count)
        if children is None:
            return EXIT_USAGE
        signalled = run_children(children, paths)
        code = shards.exit_status([c.code for c in children]) if count > 1 else children[0].code
        if count > 1:
            _merge(out, count, args.root)
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
    for name in ("outputs", shards.SHARDS):  # a partial sharded run's records name outputs under shards/
        if (out / name).exists():
            (out / name).rename(previous / name)


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


def _share_count(args, out: Path) -> int | None:
    """How many pytest processes run side by side: -n N (`auto`: one per core this process may use); a resumed run
    keeps the count it was started with. None after a usage error (printed)."""
    if args.resume:
        planned = shards.planned_count(out) or 1
        if args.workers is not None and planned != _workers(args.workers):
            print(f"qdq run: resuming the run in {out} as it was started, with {planned} process(es)", file=sys.stderr)
        return planned
    count = _workers(args.workers) if args.workers is not None else 1
    if count is None:
        print(f"qdq run: -n {args.workers!r}: give a number of processes or 'auto'", file=sys.stderr)
    return count


def _workers(text: str) -> int | None:
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(int(text), 1) if text.isdigit() else None


def _children(args, paths: list[Path], out: Path, count: int) -> list[Child] | None:
    """One pytest process writing the bundle in `out`, or `count` of them each writing its share's bundle in
    out/shards/K (merged at the end) with an equal share of the output budget."""
    common = _pytest_args(args, paths, out)
    allure = out / "allure-results" if _has_allure_pytest() else None
    if count == 1:
        extra = ["--qdq-output-budget", args.output_budget] if args.output_budget else []
        return [Child(common + ["--qdq-out", str(out), *extra], out, allure)]
    from harness.results import budget

    try:
        total = budget.parse_size(args.output_budget) if args.output_budget else budget.default_budget(out)
    except ValueError:
        print(
            f"qdq run: --output-budget {args.output_budget!r}: give a size such as 8G, 500M or 1000000", file=sys.stderr
        )
        return None
    shards.write_plan(out, count)
    children = []
    for k, folder in enumerate(shards.folders(out, count), start=1):
        share = ["--qdq-out", str(folder), "--qdq-shard", f"{k}/{count}", "--qdq-report-later"]
        share += ["--qdq-output-budget", str(total // count)]
        # A backend that pins a GPU per process (Backend.worker_environment) sees each share as xdist's worker gwK.
        env = {"QDQ_WORKER_ID": f"gw{k - 1}"}
        children.append(Child(common + share, folder, allure, env, shards.log_file(folder), f"share {k}/{count}"))
    print(f"qdq run: {count} processes side by side, each a share of the cases (logs: {out / shards.SHARDS}/K.log)")
    return children


def _merge(out: Path, count: int, root: Path | None) -> None:
    """The shares' bundles merged into `out`, then what the single process writes at its end: the summaries and the
    Allure results' report-level files."""
    from harness.report.html import write_run_reports

    try:
        doc = shards.merge(out, shards.folders(out, count))
    except (ValueError, OSError, KeyError, TypeError) as exc:  # a share's bundle unreadable: said, kept for --resume
        print(f"qdq run: the shares in {out / shards.SHARDS} could not be merged: {exc}", file=sys.stderr)
        return
    if doc is not None:
        allure = out / "allure-results"
        write_run_reports(out, doc, allure if allure.is_dir() else None, Path(os.path.abspath(root)) if root else None)


def _pytest_args(args, paths: list[Path], out: Path) -> list[str]:
    """What every pytest process of the run is given (its bundle folder apart)."""
    pytest_args = [
        *map(str, paths),
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
    pytest_args += ["-p", "no:xdist"]  # each process runs its items itself: not even xdist's import
    # The run never uses hypothesis's pytest plugin (a dev dependency for tests/): 60 ms of start-up saved.
    pytest_args += ["-p", "no:hypothesispytest"]
    for name, value in values(lambda name: getattr(args, name, None)).items():
        pytest_args += [f"--qdq-{name}", str(value)]  # one run configuration: `pytest --qdq-NAME` is the same run
    if args.resume:
        pytest_args.append("--qdq-resume")
    if args.no_parse_cache:
        pytest_args.append("--qdq-no-parse-cache")
    return pytest_args


def _has_allure_pytest() -> bool:
    # find_spec, not import: importing it here would stop pytest from rewriting its asserts (a warning every run)
    from importlib.util import find_spec

    return find_spec("allure_pytest") is not None


def _generate(out: Path, history_from: Path | None) -> bool:
    from harness.report.html import generate_html

    ok, where = generate_html(out, history_from)
    print(f"report: {where}" if ok else f"report: not generated: {where}")
    return ok

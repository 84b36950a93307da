"""The `qdq` command: a thin veneer over the pytest engine (one code path for `qdq run` and `pytest cases/`).

Exit codes: 0 nothing failed; 1 a case failed or errored; 2 usage error (bad arguments, no cases, invalid files
for `validate`).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qdq", description="Conformance harness for TensorRT Quantize/Dequantize layers")
    p.add_argument("--version", action="version", version=f"qdq-harness {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run cases on backends, write the results bundle and print the matrix")
    run.add_argument("paths", nargs="*", type=Path, help="case files or folders (default: cases/)")
    run.add_argument("--backend", action="append", default=[], help="backend to run (repeatable; default: all)")
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        help="bundle folder (default: reports/latest for a full run; reports/subset when paths, "
        "--backend, -k or --tier choose part of it)",
    )
    run.add_argument("--resume", action="store_true", help="continue the bundle in --out (items it records are kept)")
    run.add_argument(
        "--force",
        action="store_true",
        help="write into --out even when it holds files the harness did not write (they may be removed)",
    )
    run.add_argument("-n", dest="workers", default=None, help="pytest-xdist workers (a number or 'auto')")
    run.add_argument("-k", dest="keyword", default=None, help="pytest -k expression over case names, backends, tags")
    run.add_argument("--tag", action="append", default=[], help="only cases with this tag (repeatable: any of them)")
    run.add_argument("--tier", choices=("quick", "full"), default="quick", help="full adds nightly-only cases")
    run.add_argument("--root", type=Path, default=None, help="cases root, where data files must stay")
    run.add_argument(
        "--opset", type=int, default=None, help="ONNX opset for the ONNX-based backends (13, 17, 19, 21, 23)"
    )
    run.add_argument(
        "--no-parse-cache",
        action="store_true",
        help="read every case file afresh (default: unchanged files from the cache folder's parse cache)",
    )
    run.add_argument("--history-from", type=Path, default=None, help="an Allure history.jsonl to continue")
    run.add_argument("--no-report", action="store_true", help="skip the Allure HTML report")
    run.add_argument(
        "--output-budget",
        default=None,
        metavar="SIZE",
        help="bytes of stored outputs for the whole run, e.g. 8G (default: 16G or half the free disk); "
        "a case whose outputs do not fit is that case's error, the rest runs",
    )

    rpt = sub.add_parser("report", help="generate the Allure HTML report of a finished run")
    rpt.add_argument("out", type=Path, nargs="?", default=Path("reports/latest"))
    rpt.add_argument("--history-from", type=Path, default=None, help="an Allure history.jsonl to continue")

    val = sub.add_parser("validate", help="check case files (YAML, schema, structure) without running them")
    val.add_argument("paths", nargs="+", type=Path)

    sub.add_parser("backends", help="list the backends found, their versions, and why any is unavailable")

    lst = sub.add_parser("list", help="the cases after expansion, with tags, sources and what is expected")
    lst.add_argument("paths", nargs="*", type=Path, default=[Path("cases")])
    lst.add_argument("--tag", action="append", default=[], help="only cases with this tag (repeatable: any of them)")
    lst.add_argument("--backend", default=None, help="show the expectation that holds on this backend (and version)")
    lst.add_argument("--version", default=None, help="the backend's version, for version-gated overrides")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")

    cov = sub.add_parser("coverage", help="feature (tag) x backend table of a run: pass / declared deviation / skip")
    cov.add_argument("out", type=Path, nargs="?", default=Path("reports/latest"), help="the bundle folder")
    cov.add_argument("--readme", type=Path, default=None, help="also replace the table between the coverage markers")

    mat = sub.add_parser(
        "matrix",
        help="the suite once per package version, each in its own cached environment, "
        "then the bundles compared in order",
    )
    mat.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases/)")
    mat.add_argument("--out", type=Path, default=Path("reports/matrix"), help="one bundle per version under DIR")
    mat.add_argument(
        "--cache", type=Path, default=None, help="where the environments are kept (default: the cache folder)"
    )
    mat.add_argument("--md", type=Path, default=None, help="also write the comparison as Markdown")
    from .matrix import families

    for option, spec in families().items():
        mat.add_argument(f"--{option}", action="append", default=[], metavar="VERSION", help=spec.get("about", ""))

    pk = sub.add_parser("pack", help="a bundle as one .tar.gz, for a bug report or `qdq compare` elsewhere")
    pk.add_argument("out", type=Path, nargs="?", default=Path("reports/latest"), help="the bundle folder")
    pk.add_argument("-o", "--output", type=Path, default=None, help="the archive (default: DIR.tar.gz beside it)")
    pk.add_argument("--with-report", action="store_true", help="include the HTML report (large)")
    pk.add_argument("--force", action="store_true", help="replace -o even when it is not a qdq pack")

    cmp_ = sub.add_parser("compare", help="runs side by side: each bundle against the one before it")
    cmp_.add_argument("bundles", nargs="+", type=Path, help="bundle folders or their results.json, oldest first")
    cmp_.add_argument("--md", type=Path, default=None, help="also write Markdown (a pull-request comment)")
    cmp_.add_argument("--html", type=Path, default=None, help="also write HTML")
    cmp_.add_argument("--json", type=Path, default=None, help="also write JSON")
    cmp_.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even when a run that did not finish is missing (case, backend) pairs",
    )

    exp = sub.add_parser("export", help="write a case as an ONNX model, with its inputs as .npy beside it")
    exp.add_argument("case", help="case id (docs/s1-per-tensor-int8) or case file (cases/docs/s1-per-tensor-int8.yaml)")
    exp.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    exp.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the lowest that expresses the case)")
    exp.add_argument("--format", default=None, help="exporter name (default: the output's suffix, e.g. onnx)")
    exp.add_argument("--cases", type=Path, default=Path("cases"), help="cases root (default: cases/)")

    imp = sub.add_parser("import", help="cases from elsewhere: ONNX's own node tests, or a quantized ONNX model")
    imp.add_argument("source", help="'onnx-node-tests', or a model file (its suffix picks the importer, e.g. .onnx)")
    imp.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="folder to write the case files into (default: the importer's, under cases/)",
    )
    imp.add_argument("--format", default=None, help="importer name (default: the source itself, else its suffix)")
    imp.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that holds files `qdq import` did not write (they may be replaced)",
    )

    rep = sub.add_parser("repro", help="write a standalone script that reruns a case on one backend's own API")
    rep.add_argument("case", help="case id or case file path (FILE::name for a file of several cases)")
    rep.add_argument("--backend", required=True)
    rep.add_argument("-o", "--output", type=Path, default=None, help="script path (default: print it)")
    rep.add_argument("--cases", type=Path, default=Path("cases"))
    rep.add_argument(
        "--opset",
        type=int,
        default=None,
        help="ONNX opset for the ONNX-based backends' scripts, as `qdq run --opset` (default: the case's)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from .bundlecheck import BundleError

    args = _parser().parse_args(argv)
    command = {
        "run": cmd_run,
        "validate": cmd_validate,
        "backends": cmd_backends,
        "export": cmd_export,
        "import": cmd_import,
        "compare": cmd_compare,
        "matrix": cmd_matrix,
        "pack": cmd_pack,
        "list": cmd_list,
        "coverage": cmd_coverage,
        "repro": cmd_repro,
        "report": cmd_report,
    }[args.command]
    try:
        return command(args)
    except BundleError as exc:  # a bundle or pack that is not what it claims: one line, never a traceback
        print(f"qdq {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            print(f"qdq {args.command}: disk full writing {exc.filename or 'a file'}", file=sys.stderr)
            return EXIT_FAILED
        raise


# --- run ------------------------------------------------------------------------------------------------------------

FULL_RUN_OUT = Path("reports/latest")
SUBSET_OUT = Path("reports/subset")
MAX_RESUMES = 50  # pytest processes one `qdq run` may start after crashes


def cmd_run(args) -> int:
    from . import budget, bundle, ownership, summary
    from .bundle import out_dir_problem

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
        from .report import result_links

        summary.write(out, doc, result_links(out / "allure-report" / "index.html"))  # cells link into the report
    failed = any(r["status"] in ("fail", "error") for r in doc["records"])
    return EXIT_FAILED if failed or code != 0 else EXIT_OK


def _keep_previous(out: Path) -> None:
    """The last run's bundle (results folded from its journal, and its outputs) moves to DIR/previous, so that
    this run is compared with it at the end."""
    from . import bundle

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
    from . import bundlediff

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
    if args.opset:
        pytest_args += ["--qdq-opset", str(args.opset)]  # one run configuration: `pytest --qdq-opset` is the same run
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
    from . import bundle

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
    from . import bundle
    from .pytest_plugin import RunState, identify
    from .run import Record

    state = RunState(
        backends=[], out_dir=out, root=None, is_worker=False, case_paths=[Path(os.path.abspath(p)) for p in paths]
    )
    for nodeid in nodeids:
        case_id, backend = identify(nodeid, Path.cwd(), state)
        message = f"{how} while running this item (a crash in a backend that runs in the pytest process)"
        bundle.append_record(out, Record.crash(nodeid, case_id, backend, message).as_dict())
        if (out / "allure-results").is_dir():
            from .report import write_crash_result

            write_crash_result(out / "allure-results", nodeid, message)


def _has_allure_pytest() -> bool:
    # find_spec, not import: importing it here would stop pytest from rewriting its asserts (a warning every run)
    from importlib.util import find_spec

    return find_spec("allure_pytest") is not None


def _generate(out: Path, history_from: Path | None) -> bool:
    from .report import generate_html

    ok, where = generate_html(out, history_from)
    print(f"report: {where}" if ok else f"report: not generated: {where}")
    return ok


def cmd_report(args) -> int:
    if not (args.out / "allure-results").is_dir():
        print(f"qdq report: no allure-results in {args.out} (run `qdq run --out {args.out}` first)", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if _generate(args.out, args.history_from) else EXIT_FAILED


# --- compare ------------------------------------------------------------------------------------------------------


def cmd_compare(args) -> int:
    """Exit 1 when a (case, backend) regressed between two consecutive bundles, or a run that did not finish is
    missing pairs (unless --allow-partial), else 0 (2: unreadable input)."""
    import tempfile

    from . import bundlediff

    if len(args.bundles) < 2:
        print("qdq compare: give two bundles or more, oldest first", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="qdq-compare-") as scratch:  # packs unpacked here, removed after
        try:
            loaded = [bundlediff.load(p, Path(scratch)) for p in args.bundles]
            comparisons = [bundlediff.compare(a, b) for a, b in zip(loaded, loaded[1:])]
        except (OSError, ValueError) as exc:  # FileNotFoundError, BundleError: one line
            print(f"qdq compare: {exc}", file=sys.stderr)
            return EXIT_USAGE
    print(bundlediff.terminal(comparisons))
    for path, render in (
        (args.md, bundlediff.markdown),
        (args.html, bundlediff.to_html),
        (args.json, bundlediff.to_json),
    ):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(comparisons))
    lost = sum(c.lost for c in comparisons)
    if lost and not args.allow_partial:
        print(
            f"qdq compare: {lost} (case, backend) missing from a run that did not finish; exit 1 "
            "(--allow-partial to accept)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_FAILED if any(c.regressed for c in comparisons) else EXIT_OK


def cmd_pack(args) -> int:
    from . import bundle

    if not (args.out / "results.json").exists():
        print(f"qdq pack: no results.json in {args.out} (run `qdq run --out {args.out}` first)", file=sys.stderr)
        return EXIT_USAGE
    target = args.output or args.out.with_name(args.out.name + ".tar.gz")
    if target.exists() and not args.force and not bundle.is_pack(target):
        print(f"qdq pack: {target} exists and is not a qdq pack; choose another -o, or pass --force", file=sys.stderr)
        return EXIT_USAGE
    bundle.pack(args.out, target, args.with_report)
    print(f"{target}: {target.stat().st_size:,} bytes (compare it with `qdq compare {target} OTHER`)")
    return EXIT_OK


def cmd_matrix(args) -> int:
    """Exit 0 when every environment produced its bundle (differences between versions are findings, printed and
    written, not failures); 2 when none was asked for or one could not be made."""
    from . import bundlediff, matrix
    from .config import default_cache

    environments = [
        matrix.Environment(option, version, spec)
        for option, spec in matrix.families().items()
        for version in getattr(args, option.replace("-", "_"))
    ]
    if not environments:
        print("qdq matrix: name versions, e.g. --onnxruntime 1.30.0 --onnxruntime 1.32.0", file=sys.stderr)
        return EXIT_USAGE
    bad = next((env for env in environments if matrix.version_problem(env.version)), None)
    if bad is not None:  # before any environment is made: a version names a folder and a pip requirement
        print(f"qdq matrix: --{bad.option} {bad.version!r}: {matrix.version_problem(bad.version)}", file=sys.stderr)
        return EXIT_USAGE
    cache = args.cache or Path(default_cache())
    try:
        results = matrix.run(environments, [str(p) for p in args.paths], args.out, cache, [])
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"qdq matrix: {exc}", file=sys.stderr)
        return EXIT_USAGE
    comparisons = []
    for option in dict.fromkeys(env.option for env, _, _ in results):
        ordered = [(bundlediff.load(folder)) for env, folder, _ in results if env.option == option]
        comparisons += [bundlediff.compare(a, b) for a, b in zip(ordered, ordered[1:])]
    names, differing = matrix.verdict_table(results)
    print(bundlediff.terminal(comparisons))
    print(f"\n{len(differing)} (case, backend) verdict(s) differ across {', '.join(names)}:")
    for (case_id, backend), row in sorted(differing.items()):
        print(f"  {case_id} [{backend}]: " + " | ".join(f"{n}: {s}" for n, s in zip(names, row)))
    for env, _, check in results:
        if check:
            print(f"[{env.name}] check {'passed' if check['returncode'] == 0 else 'FAILED'}: {check['command']}")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(bundlediff.markdown(comparisons))
    return EXIT_OK


def cmd_list(args) -> int:
    from .caseload import check_file, iter_case_files

    tags, rows, problems = set(args.tag), [], 0
    for path in iter_case_files(args.paths):
        cases, errors = check_file(path)
        problems += len(errors)
        for case in cases:
            if tags and not tags & set(case.tags):
                continue
            expect, override = case.expectation_for(args.backend, args.version) if args.backend else (case.expect, None)
            rows.append(
                {
                    "case": case.id,
                    "tags": case.tags,
                    "source": case.source.get("document"),
                    "where": case.source.get("where"),
                    "expect": expect.describe(),
                    "declared": override.reason if override else None,
                    "tier": case.tier,
                }
            )
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            print(
                f"{row['case']}  [{', '.join(row['tags'])}]  {row['expect']}"
                + (f" (declared: {row['declared'][:80]})" if row["declared"] else "")
                + f"  <- {row['source']}"
            )
    print(
        f"{len(rows)} case(s)" + (f"; {problems} file problem(s): `qdq validate`" if problems else ""), file=sys.stderr
    )
    return EXIT_OK


def cmd_coverage(args) -> int:
    from . import bundle, summary

    if not (args.out / "results.json").exists():
        print(f"qdq coverage: no results.json in {args.out}", file=sys.stderr)
        return EXIT_USAGE
    table = summary.coverage(bundle.load(args.out))
    print(table)
    if args.readme:
        text = args.readme.read_text()
        start, end = "<!-- coverage:start -->", "<!-- coverage:end -->"
        if start not in text or end not in text:
            print(f"qdq coverage: {args.readme} has no {start} ... {end} markers", file=sys.stderr)
            return EXIT_USAGE
        head, rest = text.split(start, 1)
        args.readme.write_text(head + start + "\n" + table + end + rest.split(end, 1)[1])
    return EXIT_OK


# --- validate / backends --------------------------------------------------------------------------------------------


def cmd_validate(args) -> int:
    from .caseload import check_file, iter_case_files

    files = list(iter_case_files(args.paths))
    if not files:
        print("qdq validate: no case files found", file=sys.stderr)
        return EXIT_USAGE
    problems, count = 0, 0
    for path in files:
        cases, errors = check_file(path)
        count += len(cases)
        for error in errors:
            print(error)
            problems += 1
    print(f"{len(files)} file(s), {count} case(s), {problems} problem(s)", file=sys.stderr)
    return EXIT_USAGE if problems else EXIT_OK


def cmd_backends(args) -> int:
    from .backend import availability, discover, instance

    rows = [("backend", "available", "version", "what it is / why not")]
    for name in discover():
        a = availability(name)
        rows.append(
            (
                name,
                "yes" if a.available else "no",
                a.version or "-",
                instance(name).product if a.available else a.reason,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return EXIT_OK


# --- export / repro -------------------------------------------------------------------------------------------------


def find_case(spec: str, root: Path):
    """A case by id (`docs/s1-per-tensor-int8`, `rules/axis::bad::axis=4`) under `root`, or by file path
    (`cases/docs/s1.yaml`, `path/file.yaml::name` for a file of several cases). Exits with a one-line message."""
    from .caseload import CASE_SUFFIXES, check_file, find_root

    file_part, sep, rest = spec.partition("::")
    as_path = Path(file_part)
    if as_path.suffix in CASE_SUFFIXES and as_path.is_file():
        path, case_root = as_path, find_root(as_path)
    else:
        path = next(
            (root / f"{file_part}{sfx}" for sfx in CASE_SUFFIXES if (root / f"{file_part}{sfx}").is_file()), None
        )
        case_root = root
        if path is None:
            raise SystemExit(f"qdq: no case file for {spec!r} under {root} (give a case id or a path to a .yaml file)")
    cases, errors = check_file(path, case_root)
    if errors:
        raise SystemExit("qdq: " + "\n".join(str(e) for e in errors))
    if not sep and len(cases) == 1:
        return cases[0]
    wanted = [c for c in cases if sep and (c.id.split("::", 1)[-1] == rest or c.id == f"{c.id.split('::')[0]}::{rest}")]
    if len(wanted) == 1:
        return wanted[0]
    raise SystemExit(f"qdq: {path} holds {len(cases)} cases; name one: {', '.join(c.id for c in cases)}")


def _family_tool(group: str, command: str, name: str, asked: str):
    """The function a backend family registers under `name` in an entry point group, or None after saying why."""
    from importlib.metadata import entry_points

    tools = {ep.name: ep for ep in entry_points(group=group)}
    if name not in tools:
        print(
            f"qdq {command}: nothing registered for {asked!r}; installed: {', '.join(sorted(tools)) or 'none'}",
            file=sys.stderr,
        )
        return None
    try:
        return tools[name].load()
    except ImportError as exc:
        print(f"qdq {command}: {name!r} cannot load: {exc}", file=sys.stderr)
        return None


def _report(command: str, code: int, message: str) -> int:
    print(f"qdq {command}: {message}" if code else message, file=sys.stderr if code else sys.stdout)
    return code


def cmd_export(args) -> int:
    """The case in another format, by the exporter a backend family registers (entry point group
    `qdq_harness.exporters`; the ONNX family registers `onnx`)."""
    fmt = args.format or args.output.suffix.lstrip(".")
    write = _family_tool("qdq_harness.exporters", "export", fmt, fmt)
    if write is None:
        return EXIT_USAGE
    return _report("export", *write(find_case(args.case, args.cases), args.output, args.opset))


def cmd_import(args) -> int:
    """Cases written from another source, by the importer a backend family registers (entry point group
    `qdq_harness.importers`; the ONNX family registers `onnx-node-tests` and `onnx`)."""
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="qdq_harness.importers")}
    fmt = args.format or (args.source if args.source in names else Path(args.source).suffix.lstrip("."))
    run_import = _family_tool("qdq_harness.importers", "import", fmt, args.source)
    if run_import is None:
        return EXIT_USAGE
    return _report("import", *run_import(args.source, args.output, args.force))


def cmd_repro(args) -> int:
    from .backend import discover, instance

    if args.backend not in discover():
        print(f"qdq repro: unknown backend {args.backend!r}; installed: {', '.join(discover())}", file=sys.stderr)
        return EXIT_USAGE
    case = find_case(args.case, args.cases)
    from dataclasses import replace

    from .config import RunConfig

    backend = instance(args.backend)
    try:  # the run configuration a `qdq run` with the same options would give the backend
        backend.configure(replace(RunConfig.defaults(), opset=args.opset))
        script = backend.repro(case)
    except ValueError as exc:  # a case this backend's script writer cannot express: say why
        print(f"qdq repro: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if script is None:
        print(f"qdq repro: the backend {args.backend!r} writes no repro script", file=sys.stderr)
        return EXIT_USAGE
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(script)
        print(f"wrote {args.output}")
    else:
        print(script)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

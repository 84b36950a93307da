"""The commands that read finished runs: `qdq report`, `compare`, `pack`, `coverage`, and `matrix`, which makes
one run per version and compares them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from harness.cli.run import _generate


def cmd_report(args) -> int:
    if not (args.out / "allure-results").is_dir():
        print(f"qdq report: no allure-results in {args.out} (run `qdq run --out {args.out}` first)", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if _generate(args.out, args.history_from) else EXIT_FAILED


def cmd_compare(args) -> int:
    """Exit 1 when a (case, backend) regressed between two consecutive bundles, or a run that did not finish is
    missing pairs (unless --allow-partial), else 0 (2: unreadable input)."""
    import tempfile

    from harness.results import bundlediff

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
    outputs = [(p, render) for p, render in _comparison_outputs(args) if p]
    problems = [] if args.force else [x for p, _ in outputs if (x := _comparison_file_problem(p))]
    if problems:
        print("\n".join(f"qdq compare: {x}" for x in problems), file=sys.stderr)
        return EXIT_USAGE
    for path, render in outputs:
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


def _comparison_outputs(args):
    from harness.results import bundlediff

    return [(args.md, bundlediff.markdown), (args.html, bundlediff.to_html), (args.json, bundlediff.to_json)]


def _comparison_file_problem(path: Path) -> str | None:
    """A comparison file may replace only an earlier one (Markdown, HTML or JSON as `qdq compare` writes them)."""
    from harness.results.bundlediff import MARKDOWN_SIGNATURE
    from harness.results.ownership import file_problem, text_starts_with

    ours = text_starts_with(
        MARKDOWN_SIGNATURE,
        "<!doctype html><meta charset='utf-8'><title>qdq compare</title>",
        '[\n {\n  "before": ',
        "[]",
    )
    return file_problem(path, ours, "the comparison")


def cmd_pack(args) -> int:
    from harness.results import pack

    if not (args.out / "results.json").exists():
        print(f"qdq pack: no results.json in {args.out} (run `qdq run --out {args.out}` first)", file=sys.stderr)
        return EXIT_USAGE
    target = args.output or args.out.with_name(args.out.name + ".tar.gz")
    if target.exists() and not args.force and not pack.is_pack(target):
        print(f"qdq pack: {target} exists and is not a qdq pack; choose another -o, or pass --force", file=sys.stderr)
        return EXIT_USAGE
    pack.pack(args.out, target, args.with_report)
    print(f"{target}: {target.stat().st_size:,} bytes (compare it with `qdq compare {target} OTHER`)")
    return EXIT_OK


def cmd_matrix(args) -> int:
    """Exit 0 when every environment produced its bundle (differences between versions are findings, printed and
    written, not failures); 2 when none was asked for or one could not be made."""
    from harness.results import bundlediff
    from harness.cli import matrix
    from harness.engine.config import default_cache

    environments = [
        matrix.Environment(option, version, spec)
        for option, spec in matrix.families().items()
        for version in getattr(args, option.replace("-", "_"))
    ]
    if not environments:
        flags = " / ".join(f"--{o} V..." for o in matrix.families())
        print(f"qdq matrix: name at least one version ({flags})", file=sys.stderr)
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
        problem = None if args.force else _comparison_file_problem(args.md)
        if problem:
            print(f"qdq matrix: {problem}", file=sys.stderr)
            return EXIT_USAGE
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(bundlediff.markdown(comparisons))
    return EXIT_OK


def cmd_coverage(args) -> int:
    from harness.results import bundle
    from harness.report import summary

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

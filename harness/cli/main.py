"""The `qdq` command: a thin veneer over the pytest engine (one code path for `qdq run` and `pytest cases/`).

Exit codes: 0 nothing failed; 1 a case failed or errored; 2 usage error (bad arguments, no cases, invalid files
for `validate`).
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from harness import __version__
from harness.engine.options import add_arguments

from harness.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from harness.cli.bundles import cmd_compare, cmd_coverage, cmd_matrix, cmd_pack, cmd_report
from harness.cli.cases import cmd_export, cmd_import, cmd_list, cmd_repro, cmd_validate
from harness.cli.run import cmd_run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qdq", description="Conformance runs of Quantize/Dequantize layers on every installed backend"
    )
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
    run.add_argument(
        "-n",
        dest="workers",
        default=None,
        help="pytest processes side by side, each running a share of the cases (a number or 'auto': one per core)",
    )
    run.add_argument("-k", dest="keyword", default=None, help="pytest -k expression over case names, backends, tags")
    run.add_argument("--tag", action="append", default=[], help="only cases with this tag (repeatable: any of them)")
    run.add_argument("--tier", choices=("quick", "full"), default="quick", help="full adds nightly-only cases")
    run.add_argument("--root", type=Path, default=None, help="cases root, where data files must stay")
    add_arguments(run)  # the backend families' own options (the ONNX backends' --opset)
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
    mat.add_argument("--force", action="store_true", help="replace a --md file qdq did not write")
    from harness.cli.matrix import families

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
    cmp_.add_argument("--force", action="store_true", help="replace --md/--html/--json files qdq did not write")
    cmp_.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even when a run that did not finish is missing (case, backend) pairs",
    )

    exp = sub.add_parser(
        "export", help="write a case in a backend family's model format, with its inputs as .npy beside it"
    )
    exp.add_argument("case", help="case id (docs/s1-per-tensor-int8) or case file (cases/docs/s1-per-tensor-int8.yaml)")
    exp.add_argument(
        "-o", "--output", type=Path, required=True, help="the model file to write (its suffix picks the exporter)"
    )
    add_arguments(exp)
    exp.add_argument("--format", default=None, help="exporter name (default: the output's suffix)")
    exp.add_argument("--force", action="store_true", help="replace an -o file that is not one of our exports")
    exp.add_argument("--cases", type=Path, default=Path("cases"), help="cases root (default: cases/)")

    imp = sub.add_parser(
        "import", help="cases from elsewhere, by an importer a backend family registers (node tests, quantized models)"
    )
    imp.add_argument("source", help="an importer's name, or a model file (its suffix picks the importer)")
    imp.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="folder to write the case files into (default: the importer's, under cases/)",
    )
    imp.add_argument("--format", default=None, help="importer name (default: the source itself, else its suffix)")
    imp.add_argument(
        "--whole",
        action="store_true",
        help="also run the model whole and name the first Q/DQ node where backends part (the family's "
        "`<format>-whole` importer)",
    )
    imp.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that holds files `qdq import` did not write (they may be replaced)",
    )

    rep = sub.add_parser("repro", help="write a standalone script that reruns a case on one backend's own API")
    rep.add_argument("case", help="case id or case file path (FILE::name for a file of several cases)")
    rep.add_argument("--backend", required=True)
    rep.add_argument("-o", "--output", type=Path, default=None, help="script path (default: print it)")
    rep.add_argument("--force", action="store_true", help="replace an -o file that is not a qdq repro script")
    rep.add_argument("--cases", type=Path, default=Path("cases"))
    add_arguments(rep)  # as `qdq run` takes them: a script is written under the options a run would use
    return p


def main(argv: list[str] | None = None) -> int:
    from harness.results.bundlecheck import BundleError

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


# --- compare ------------------------------------------------------------------------------------------------------


# --- validate / backends --------------------------------------------------------------------------------------------


def cmd_backends(args) -> int:
    from harness.engine.backend import availability, discover, instance

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


if __name__ == "__main__":
    sys.exit(main())

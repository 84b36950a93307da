"""The commands about cases: `qdq list`, `validate`, `export`, `import` and `repro` (the last three by the tools
a backend family registers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.cli import EXIT_OK, EXIT_USAGE
from harness.engine.options import values


def find_case(spec: str, root: Path):
    """A case by id (`docs/s1-per-tensor-int8`, `rules/axis::bad::axis=4`) under `root`, or by file path
    (`cases/docs/s1.yaml`, `path/file.yaml::name` for a file of several cases). Exits with a one-line message."""
    from harness.cases.load import CASE_SUFFIXES, check_file, find_root

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
    # The family says which existing files are its own exports (`is_ours` on its exporter): nothing else is replaced.
    from harness.results.ownership import file_problem

    problem = None if args.force else file_problem(args.output, getattr(write, "is_ours", lambda p: False), "it")
    if problem:
        return _report("export", EXIT_USAGE, problem)
    options = values(lambda name: getattr(args, name, None))
    return _report("export", *write(find_case(args.case, args.cases), args.output, options))


def cmd_import(args) -> int:
    """Cases written from another source, by the importer a backend family registers (entry point group
    `qdq_harness.importers`; the ONNX family registers `onnx-node-tests` and `onnx`)."""
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="qdq_harness.importers")}
    fmt = args.format or (args.source if args.source in names else Path(args.source).suffix.lstrip("."))
    if getattr(args, "whole", False):
        fmt = f"{fmt}-whole"
    run_import = _family_tool("qdq_harness.importers", "import", fmt, args.source)
    if run_import is None:
        return EXIT_USAGE
    return _report("import", *run_import(args.source, args.output, args.force))


def cmd_repro(args) -> int:
    from harness.engine.backend import discover, instance

    if args.backend not in discover():
        print(f"qdq repro: unknown backend {args.backend!r}; installed: {', '.join(discover())}", file=sys.stderr)
        return EXIT_USAGE
    case = find_case(args.case, args.cases)
    from harness.engine.config import RunConfig

    backend = instance(args.backend)
    try:  # the run configuration a `qdq run` with the same options would give the backend
        backend.configure(RunConfig.defaults().with_options(values(lambda name: getattr(args, name, None))))
        script = backend.repro(case)
    except ValueError as exc:  # a case this backend's script writer cannot express: say why
        print(f"qdq repro: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if script is None:
        why = f"{case.id} runs the model file {case.model.path}, its own reproduction" if case.model else ""
        print(f"qdq repro: {why or f'the backend {args.backend!r} writes no repro script'}", file=sys.stderr)
        return EXIT_USAGE
    if args.output:
        from harness.engine.scripts import SIGNATURE
        from harness.results.ownership import file_problem, text_starts_with

        problem = None if args.force else file_problem(args.output, text_starts_with(SIGNATURE), "the script")
        if problem:
            print(f"qdq repro: {problem}", file=sys.stderr)
            return EXIT_USAGE
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(script)
        print(f"wrote {args.output}")
    else:
        print(script)
    return EXIT_OK


def cmd_list(args) -> int:
    from harness.cases.load import check_file, iter_case_files

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


def cmd_validate(args) -> int:
    from harness.cases.load import check_file, iter_case_files

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

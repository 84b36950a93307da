"""`qdq matrix`: the suite run once per version of a backend's package, each in a virtual environment of its own
(made from the package index, cached), the bundles kept side by side, then compared in order.

The engine knows no package: backend families declare what a version flag means in the entry point group
`qdq_harness.matrix` (a dict option -> {"requirements": [...], "backends": [...], "check": [...], "about": str}),
with `{version}` in the requirements and the check command. The repository is installed editable in each
environment, so every environment runs today's harness and cases; only the pinned packages differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Environment:
    option: str  # e.g. "onnxruntime"
    version: str
    spec: dict

    @property
    def name(self) -> str:
        return f"{self.option}-{self.version}"


def families() -> dict[str, dict]:
    """Every matrix option the installed backend families declare."""
    found: dict[str, dict] = {}
    for ep in sorted(entry_points(group="qdq_harness.matrix"), key=lambda e: e.name):
        try:
            found.update(ep.load())
        except Exception as exc:  # a broken family must not hide the others
            print(f"qdq matrix: {ep.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return found


def version_problem(version: str) -> str | None:
    """Why `version` is not one exact release to install (a PEP 440 version, as pip pins it), or None."""
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return "not a PEP 440 version (e.g. 1.32.0, 10.16.0.72, 1.7.0rc1); nothing was made"
    if version != version.strip() or "/" in version or "\\" in version:
        return "not a plain version; nothing was made"
    return None


def venv_for(env: Environment, cache: Path, log) -> Path:
    """The cached virtual environment of one pinned version, made on first use; one that fails to install is
    removed, not left half made."""
    import shutil

    if version_problem(env.version):
        raise RuntimeError(f"[{env.name}] {version_problem(env.version)}")
    venvs = cache / "venvs"
    folder = venvs / f"{env.name}-py{sys.version_info[0]}.{sys.version_info[1]}"
    if os.path.commonpath([os.path.abspath(folder), os.path.abspath(venvs)]) != os.path.abspath(venvs):
        raise RuntimeError(f"[{env.name}] would be made outside {venvs}")
    done = folder / ".qdq-complete"
    if done.exists():
        return folder
    log(f"[{env.name}] making {folder}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    spec = env.spec["requirements"]
    requirements = spec(env.version) if callable(spec) else [r.format(version=env.version) for r in spec]
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "-e", str(REPO), *requirements], capture_output=True, text=True)
    if installed.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(
            f"[{env.name}] pip install {' '.join(requirements)} failed: {installed.stderr.strip()[-1500:]}"
        )
    done.write_text(json.dumps({"requirements": requirements}))
    return folder


def run(
    environments: list[Environment], paths: list[str], out: Path, cache: Path, run_args: list[str], log=print
) -> list[tuple[Environment, Path, dict]]:
    """Each environment's bundle (and its check's result), in the order given."""
    import time

    results = []
    for i, env in enumerate(environments, 1):
        log(f"[{i}/{len(environments)}] {env.name}")
        started = time.monotonic()
        folder = venv_for(env, cache, log)
        python = str(folder / "bin" / "python")
        bundle = out / env.name
        check = {}
        if env.spec.get("check"):
            command = [python if part == "{python}" else part.format(version=env.version) for part in env.spec["check"]]
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
            check = {
                "command": " ".join(command),
                "returncode": done.returncode,
                "tail": (done.stdout + done.stderr).strip()[-1500:],
            }
            log(f"[{env.name}] check: {'passed' if done.returncode == 0 else 'FAILED'} ({check['command']})")
        args = [python, "-m", "harness.cli.main", "run", *paths, "--out", str(bundle), "--no-report", *run_args]
        for backend in env.spec["backends"]:
            args += ["--backend", backend]
        log(f"[{env.name}] qdq run -> {bundle}")
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
        if not (bundle / "results.json").exists():
            raise RuntimeError(
                f"[{env.name}] the run wrote no bundle (exit {done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-1500:]}"
            )
        from collections import Counter

        from harness.results import bundle as bundle_mod

        statuses = Counter(r["status"] for r in bundle_mod.load(bundle)["records"])
        log(
            f"[{i}/{len(environments)}] {env.name}: "
            + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
            + f" in {time.monotonic() - started:.0f} s"
        )
        results.append((env, bundle, check))
    return results


def verdict_table(results: list[tuple[Environment, Path, dict]]) -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    """(environment names, (case, backend) -> status per environment) for the rows whose status differs."""
    from harness.results import bundle as bundle_mod

    names = [env.name for env, _, _ in results]
    table: dict[tuple[str, str], list[str]] = {}
    for i, (_, folder, _) in enumerate(results):
        for r in bundle_mod.load(folder)["records"]:
            row = table.setdefault((r["case_id"], r.get("backend") or ""), ["-"] * len(results))
            row[i] = r["status"] + (f" ({r['kind']})" if r["status"] in ("fail", "error") else "")
    differing = {k: v for k, v in table.items() if len(set(v)) > 1}
    return names, differing

"""`python -m benchmarks [--tiny] [--out benchmarks/results]`: every speed goal of the harness, measured against
its floor in the same run, written as JSON and a Markdown table (`benchmarks/results/`).

A benchmark, not a test: it stays out of CI (a test runs it with --tiny to check it works). Each row runs the real
command in a fresh process, on generated cases in a temporary folder; memory is the peak resident set of the
largest process (getrusage of the children), or numpy's traced allocations for the reference itself. The harness's
cache folder (QDQ_CACHE) is a fresh temporary one: the first collection of a folder reads every file (cold), the
ones after take unchanged files from the parse cache (warm), as a user's second and later runs do.

Each time is the best of REPEATS runs (on the 2-core machine of the committed results, one command's time varied by
up to 2x from one run to the next), except the three-backend runs (one each: a minute apiece).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CASE = """title: generated {name}
source: {{document: benchmark}}
network:
  - {{op: input, name: x, dtype: float32, shape: [8]}}
  - {{op: constant, name: s, dtype: float32, shape: [], value: "{scale}"}}
  - {{op: quantize, name: q, input: x, scale: s, to: int8}}
  - {{op: dequantize, name: y, input: q, scale: s, to: float32}}
outputs: [y]
inputs: {{x: [-3, -1.5, -0.25, 0, 0.25, 1.5, 3, 100]}}
expect: reference
"""


def write_cases(folder: Path, n: int, one_file: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if one_file:
        a = max(1, int(math.sqrt(n)))
        b = max(1, n // a)
        text = CASE.format(name="${a}-${b}", scale="(${a}+1)/(${b}+64)")
        text += f"matrix: {{a: {list(range(a))}, b: {list(range(b))}}}\n"
        (folder / "matrix.yaml").write_text(text)
    else:
        for i in range(n):
            (folder / f"c{i:05d}.yaml").write_text(CASE.format(name=i, scale=f"{i % 97 + 1}/64"))
    return folder


ENV: dict[str, str] = {}  # QDQ_CACHE for every command: set by `measure`
REPEATS = 3


def fresh_dir(parent: Path, stem: str) -> Path:
    """A folder not used yet (each repeated `qdq run` writes a bundle of its own, with no previous one to compare)."""
    i = 0
    while (parent / f"{stem}-{i}").exists():
        i += 1
    return parent / f"{stem}-{i}"


def best(repeats: int, measure_once):
    """The fastest of `repeats` measurements (each a tuple whose first item is seconds)."""
    return min((measure_once() for _ in range(repeats)), key=lambda result: result[0])


FLOOR_PLUGIN = """
import pytest


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".yaml":
        return OneItem.from_parent(parent, path=file_path)


class OneItem(pytest.File):
    def collect(self):
        yield Nothing.from_parent(self, name=self.path.stem + "[numpy]")


class Nothing(pytest.Item):
    def runtest(self):
        pass
"""


def run(args: list[str], cwd: Path = REPO, env: dict | None = None) -> tuple[float, int, subprocess.CompletedProcess]:
    """Seconds, peak RSS in bytes (the largest process waited for), and the completed process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", **ENV, **(env or {})},
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) * 1024, done


def pytest_run(folder: Path, out: Path | None, backends: list[str], workers: str | None, collect: bool = False):
    args = [
        sys.executable,
        "-m",
        "pytest",
        str(folder),
        "--qdq-cases",
        str(folder),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:allure_pytest",
    ]
    for b in backends:
        args += ["--qdq-backend", b]
    if out:
        args += ["--qdq-out", str(out)]
    if workers:
        args += ["-n", workers]
    if collect:
        args.append("--collect-only")
    return run(args)


def qdq_run(folder: Path, out: Path, backends: list[str], workers: str | None = None):
    """`qdq run` as a user types it (--no-report: the HTML is its own row's business)."""
    args = [sys.executable, "-m", "harness.cli.main", "run", str(folder), "--out", str(out), "--no-report"]
    for b in backends:
        args += ["--backend", b]
    return run(args + (["-n", workers] if workers else []))


def pytest_floor(folder: Path, tmp: Path, *extra: str) -> float:
    """pytest alone on the same files, one item each that does nothing, no harness: the floor of collecting them
    (`--collect-only`), or of running them (with `-n N` for xdist's own share)."""
    (tmp / "floor_plugin.py").write_text(FLOOR_PLUGIN)
    seconds, _, done = run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(folder),
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:allure_pytest",
            "-p",
            "no:qdq_harness",
            "-p",
            "floor_plugin",
            "-c",
            os.devnull,
            "--rootdir",
            str(folder),
            *extra,
        ],
        env={"PYTHONPATH": str(tmp)},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return seconds


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def reference_call_seconds(repeats: int = 2000) -> float:
    """The floor of a numpy run: the reference's own call on one generated case."""
    from harness.cases.load import load_file
    from harness.engine.execute import execute
    from plugins.numpy.backend import NumpyReference

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_cases(Path(tmp), 1, one_file=False)
        (case,) = load_file(folder / "c00000.yaml", folder)
        backend = NumpyReference()
        start = time.perf_counter()
        for _ in range(repeats):
            execute(backend, case)
        return (time.perf_counter() - start) / repeats


def qdq_floor(n: int) -> tuple[float, int]:
    """Q -> DQ of n float32 with numpy alone, in place: the floor of the reference."""
    x = np.random.default_rng(0).normal(0, 4, n).astype(np.float32)
    tracemalloc.start()
    start = time.perf_counter()
    v = x * np.float32(32.0)
    np.clip(v, -128, 127, out=v)
    np.rint(v, out=v)
    q = v.astype(np.int8)
    del v
    y = q.astype(np.float32)
    y *= np.float32(1 / 32)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak + x.nbytes


def qdq_reference(n: int) -> tuple[float, int]:
    from harness.cases.network import Granularity
    from plugins.numpy.backend import dequantize, quantize

    x = np.random.default_rng(0).normal(0, 4, n).astype(np.float32)
    scale = np.float32(1 / 32)
    g = Granularity("per-tensor")
    s = g.compact(np.array(scale), x.shape)
    r = g.compact(np.float32(1) / np.array(scale), x.shape)
    tracemalloc.start()
    start = time.perf_counter()
    y = dequantize(quantize(x, s, "int8", r), s, "float32")
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del y
    return seconds, peak + x.nbytes


def big_case(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "x.npy", np.random.default_rng(0).normal(0, 4, n).astype(np.float32), allow_pickle=False)
    (folder / "big.yaml").write_text(f"""title: {n} elements
source: {{document: benchmark}}
network:
  - {{op: input, name: x, dtype: float32, shape: [{n}]}}
  - {{op: constant, name: s, dtype: float32, shape: [], value: "1/32"}}
  - {{op: quantize, name: q, input: x, scale: s, to: int8}}
  - {{op: dequantize, name: y, input: q, scale: s, to: float32}}
outputs: [y]
inputs: {{x: {{npy: x.npy}}}}
expect: observe
""")
    return folder


def ort_session_seconds(folder: Path) -> float:
    """The floor of an onnxruntime case: session.run of the same model on the same input, alone."""
    import onnxruntime as ort

    from harness.cases.load import load_file
    from plugins.onnx.export import export

    (case,) = load_file(folder / "big.yaml", folder)
    session = ort.InferenceSession(export(case).model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.load(folder / "x.npy", allow_pickle=False)
    start = time.perf_counter()
    session.run(None, {"x": x})
    return time.perf_counter() - start


def measure(tiny: bool) -> list[dict]:
    n = 20 if tiny else 10_000
    big, ort_n = (1 << 16, 1 << 14) if tiny else (1 << 26, 1 << 24)
    k = 1 if tiny else REPEATS
    rows = []

    def row(what, floor, now, goal, met):
        rows.append({"what": what, "floor": floor, "now": now, "goal": goal, "met": bool(met)})
        print(f"{what}: {now} (goal {goal}; floor {floor}) {'MET' if met else 'NOT MET'}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ENV["QDQ_CACHE"] = str(tmp / "qdq-cache")
        each, matrix = write_cases(tmp / "each", n, False), write_cases(tmp / "matrix", n, True)
        limit = 3 * (n / 10_000 if tiny else 1) + (2 if tiny else 0)
        floor_each = best(k, lambda: (pytest_floor(each, tmp, "--collect-only"),))[0]
        fresh = iter(range(k))

        def cold_once():
            ENV["QDQ_CACHE"] = str(tmp / f"qdq-cache-{next(fresh)}")  # a fresh cache folder: a first read
            return [pytest_run(folder, None, ["numpy"], None, collect=True)[0] for folder in (matrix, each)]

        cold = [min(times) for times in zip(*(cold_once() for _ in range(k)))]
        warm = [
            best(k, lambda: pytest_run(folder, None, ["numpy"], None, collect=True))[0] for folder in (matrix, each)
        ]
        row(
            f"collect {n} cases (parse cache warm: every run after the first)",
            f"{floor_each:.1f} s (pytest alone, {n} files, nothing read)",
            f"{warm[0]:.1f} s (one matrix file), {warm[1]:.1f} s (one file each)",
            "< 3 s",
            max(warm) < limit,
        )
        row(
            f"collect {n} cases, first time (parse cache cold)",
            f"{floor_each:.1f} s (pytest alone, {n} files, nothing read)",
            f"{cold[0]:.1f} s (one matrix file), {cold[1]:.1f} s (one file each)",
            "< 3 s",
            max(cold) < limit,
        )

        floor = reference_call_seconds() * n
        p0 = best(k, lambda: (pytest_floor(each, tmp),))[0]
        p2 = best(k, lambda: (pytest_floor(each, tmp, "-n", "2"),))[0]
        runs = [
            (qdq_run(each, fresh_dir(tmp, "o0"), ["numpy"]), qdq_run(each, fresh_dir(tmp, "o2"), ["numpy"], "2"))
            for i in range(k)
        ]  # alternated: a slow spell of the machine weighs on both
        s0, _, r0 = min((a for a, _ in runs), key=lambda r: r[0])
        s2, _, r2 = min((b for _, b in runs), key=lambda r: r[0])
        row(
            f"qdq run, {n} cases on numpy (parse cache warm; bundle, summary, Allure results, no HTML)",
            f"{floor:.2f} s (the reference call); pytest alone, {n} items doing nothing: {p0:.1f} s (-n 0), "
            f"{p2:.1f} s (pytest-xdist -n 2)",
            f"{s0:.1f} s (one process), {s2:.1f} s (-n 2: two processes, each a share of the cases)",
            "< 20 s with -n 2; -n 2 no slower than one process",
            s2 < 20 and s2 <= s0 and r0.returncode == 0 and r2.returncode == 0,
        )

        three = ["numpy", "onnxruntime", "onnx-reference"]
        s3, m3, r3 = pytest_run(each, tmp / "o3", three, "2")
        s30, _, _ = pytest_run(each, tmp / "o30", three, None)  # where each item does more: what -n 2 buys
        row(
            f"three CPU backends, {n} cases",
            "-",
            f"{s3:.1f} s (-n 2; {s30:.1f} s with -n 0), {m3 / 2**30:.2f} GB peak process",
            "< 120 s, memory flat in the case count",
            s3 < 120 and r3.returncode == 0,
        )
        sm, _, _ = pytest_run(matrix, tmp / "o3m", three, "2")
        size_each, size_matrix = folder_bytes(tmp / "o3"), folder_bytes(tmp / "o3m")
        row(
            f"output of {n} cases x 3 backends",
            "-",
            f"{size_each / 2**20:.1f} MB (one file each), {size_matrix / 2**20:.1f} MB (one matrix file)",
            "< 100 MB either way, linear",
            max(size_each, size_matrix) < 100 * 2**20,
        )

        fs, fm = best(k, lambda: qdq_floor(big))
        rs, rm = best(k, lambda: qdq_reference(big))
        row(
            f"Q->DQ of {big} float32 in the reference",
            f"{fs * 1e3:.0f} ms, {fm / 2**20:.0f} MB (numpy in place)",
            f"{rs * 1e3:.0f} ms, {rm / 2**20:.0f} MB",
            "<= 2x time, <= 2x memory",
            rs <= 2 * fs and rm <= 2 * fm,
        )

        folder = big_case(tmp / "big", big)
        call, _ = best(k, lambda: qdq_reference(big))
        sb, mb, rb = best(
            k,
            lambda: run(
                [
                    sys.executable,
                    "-m",
                    "harness.cli.main",
                    "run",
                    str(folder),
                    "--backend",
                    "numpy",
                    "--out",
                    str(fresh_dir(tmp, "ob")),
                    "--no-report",
                ]
            ),
        )
        row(
            f"qdq run of one {big}-element case (numpy)",
            f"{call:.2f} s (the reference call)",
            f"{sb:.1f} s, {mb / 2**30:.2f} GB",
            "<= 3x the call (plus starting up)",
            sb <= 3 * call + 1.5 and rb.returncode == 0,
        )

        folder = big_case(tmp / "ort", ort_n)
        session = best(k, lambda: (ort_session_seconds(folder),))[0]
        so, _, ro = best(
            k,
            lambda: run(
                [
                    sys.executable,
                    "-m",
                    "harness.cli.main",
                    "run",
                    str(folder),
                    "--backend",
                    "onnxruntime",
                    "--out",
                    str(fresh_dir(tmp, "oo")),
                    "--no-report",
                ]
            ),
        )
        row(
            f"qdq run of one {ort_n}-element case (onnxruntime)",
            f"{session * 1e3:.1f} ms session.run",
            f"{so:.1f} s",
            "<= 2x the call plus writing it (and starting up)",
            ro.returncode == 0 and so < 2 * session + 3,
        )

        floor_py, _, _ = best(k, lambda: run([sys.executable, "-c", "pass"]))
        small = write_cases(tmp / "small", 1, False)
        ss, _, rs_ = best(
            k,
            lambda: run(
                [
                    sys.executable,
                    "-m",
                    "harness.cli.main",
                    "run",
                    str(small),
                    "--backend",
                    "numpy",
                    "--out",
                    str(fresh_dir(tmp, "os")),
                    "--no-report",
                ]
            ),
        )
        row(
            "qdq run of one small case",
            f"{floor_py:.2f} s (python -c pass)",
            f"{ss:.2f} s",
            "< 0.8 s",
            ss < 0.8 and rs_.returncode == 0,
        )

        thousand = 20 if tiny else 1000
        cases = write_cases(tmp / "thousand", thousand, True)  # one matrix file, as a user's sweep is written
        floor_k = best(k, lambda: (pytest_floor(cases, tmp),))[0]
        sk, _, rk = best(
            k,
            lambda: run(
                [
                    sys.executable,
                    "-m",
                    "harness.cli.main",
                    "run",
                    str(cases),
                    "--backend",
                    "numpy",
                    "--out",
                    str(fresh_dir(tmp, "ok")),
                    "--no-report",
                ]
            ),
        )
        size_k = folder_bytes(tmp / "ok-0")  # every repeat writes the same bundle
        row(
            f"qdq run of {thousand} cases on numpy (bundle, summary, Allure results; no HTML)",
            f"{floor_k:.1f} s (pytest alone, {thousand} items doing nothing)",
            f"{sk:.1f} s, {size_k / 2**20:.1f} MB written",
            "< 3 s, < 5 MB",
            sk < 3 and size_k < 5 * 2**20 and rk.returncode == 0,
        )
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"# qdq-harness benchmarks ({meta['when']}, {meta['machine']})",
        "",
        f"`{meta['command']}`",
        "",
        "| what | floor | now | goal | met |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['what']} | {r['floor']} | {r['now']} | {r['goal']} | {'yes' if r['met'] else '**no**'} |" for r in rows
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: checks the runner, measures nothing")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    rows = measure(args.tiny)
    meta = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python -m benchmarks" + (" --tiny" if args.tiny else ""),
        "tiny": args.tiny,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "tiny" if args.tiny else "latest"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / f"{stem}.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())

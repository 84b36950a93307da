"""Every TensorRT API use of the compatibility layer's branch for a version exists in that version's real bindings.

The bindings wheels (about 1 MB each) are real binary wheels that fail to import only because libnvinfer is
missing; link stubs for the few C entry points they need (generated from the wheel's own undefined symbols, as in
docs/tensorrt-versions.md, "The Python API per version") let them import. tests/trt_surface_probe.py then runs the backends' network and
runtime code against each version through recording proxies. Without package-index access or gcc/binutils the
tests skip with that reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("QDQ_CACHE", Path.home() / ".cache" / "qdq-harness")) / "trt-bindings"
VERSIONS = {  # one per supported line: 8.6, the newest 10.x, the newest 11.x
    "8.6.1": "tensorrt-bindings==8.6.1",
    "10.16.1.11": "tensorrt-cu12-bindings==10.16.1.11",
    "11.4.0.106": "tensorrt-cu12-bindings==11.4.0.106",
}
_SKIP_SYMBOLS = ("GLIBC", "CXXABI", "GLIBCXX", "GCC_")


def _stub_libraries(so: Path, out: Path) -> None:
    """Do-nothing libraries named as the bindings' DT_NEEDED TensorRT libraries, exporting their undefined symbols."""
    dynsyms = subprocess.run(["objdump", "-T", str(so)], capture_output=True, text=True, check=True).stdout
    symbols = sorted(
        {
            line.split()[-1]
            for line in dynsyms.splitlines()
            if "*UND*" in line
            and not any(s in line for s in _SKIP_SYMBOLS)
            and not line.split()[-1].startswith(("Py", "_Py", "_ITM", "__gmon", "dl", "pthread", "__pthread"))
        }
    )
    (out / "stub.c").write_text("".join(f"void* {s}(void) {{ return 0; }}\n" for s in symbols))
    needed = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    libs = [
        line.split("[")[1].rstrip("]")
        for line in needed.splitlines()
        if "NEEDED" in line and any(k in line for k in ("nvinfer", "nvonnxparser", "nvparsers"))
    ]
    for lib in libs:
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-o", str(out / lib), f"-Wl,-soname,{lib}", str(out / "stub.c")],
            check=True,
            capture_output=True,
        )


@contextmanager
def _exclusive(folder: Path):
    """One process at a time prepares a version (pytest-xdist workers share the cache; a cold cache once raced)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _prepare(version: str) -> tuple[Path, Path]:
    if version == "8.6.1" and sys.version_info[:2] != (3, 11):
        pytest.skip("tensorrt-bindings 8.6.1 exists for CPython 3.11 only")
    for tool in ("objdump", "readelf", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (binutils/gcc build the link stubs)")
    folder = CACHE / version
    bindings, stubs = folder / "site", folder / "stubs"
    with _exclusive(folder):
        if not (bindings / "tensorrt_bindings").exists():
            work = Path(tempfile.mkdtemp(dir=folder, prefix="download."))
            try:
                got = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "-q",
                        "--no-deps",
                        "--only-binary=:all:",
                        "-d",
                        str(work),
                        VERSIONS[version],
                    ],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                files = list(work.glob("*.whl"))
                if got.returncode != 0 or not files:
                    pytest.skip(
                        f"cannot download {VERSIONS[version]} from the package index: {got.stderr.strip()[-300:]}"
                    )
                with zipfile.ZipFile(files[0]) as z:
                    z.extractall(work / "site")
                shutil.rmtree(bindings, ignore_errors=True)
                (work / "site").rename(bindings)  # complete or absent, never half extracted
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if not stubs.exists():
            work = Path(tempfile.mkdtemp(dir=folder, prefix="stubs."))
            try:
                _stub_libraries(next((bindings / "tensorrt_bindings").glob("tensorrt*.so")), work)
                work.rename(stubs)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return bindings, stubs


def probe(version: str, mutation: str = "") -> dict:
    bindings, stubs = _prepare(version)
    env = {**os.environ, "LD_LIBRARY_PATH": f"{stubs}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    args = [sys.executable, str(HERE / "trt_surface_probe.py"), str(bindings)] + (
        ["--mutation", mutation] if mutation else []
    )
    run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", list(VERSIONS))
def test_every_api_use_exists_in_that_version(version):
    result = probe(version)
    assert result["version"] == version
    assert result["problems"] == []
    used = set(result["used"])
    # the uses really were exercised, each version's branch with its own arity
    quantize_arity = "/2" if version == "8.6.1" else "/3"
    assert f"INetworkDefinition.add_quantize{quantize_arity}" in used
    assert {
        "IQuantizeLayer.axis=",
        "IQuantizeLayer.set_input/2",
        "Builder.build_serialized_network/2",
        "IExecutionContext.execute_async_v3/1",
        "IExecutionContext.set_tensor_address/2",
        "IBuilderConfig.create_timing_cache/1",
        "IBuilderConfig.set_timing_cache/2",
    } <= used
    # the branches really differ: 8.6 and 10.x offer weak typing, 11.x is strongly typed only
    assert result["typing"] == (
        ["strong"] if version.startswith("11.") else ["strong", "weak"] if version.startswith("10.") else ["weak"]
    )


def test_a_renamed_attribute_is_caught():
    problems = probe("11.4.0.106", "renamed-attribute")["problems"]
    assert any("INetworkDefinition.add_quantize_layer: no such attribute" in p for p in problems), problems


def test_a_three_argument_add_quantize_is_caught_on_8_6():
    problems = probe("8.6.1", "three-arg-quantize")["problems"]
    assert any(p.startswith("INetworkDefinition.add_quantize: called with 3 positional") for p in problems), problems


def test_execute_async_v2_is_caught_on_11():
    problems = probe("11.4.0.106", "execute-async-v2")["problems"]
    assert any("IExecutionContext.execute_async_v2: no such attribute" in p for p in problems), problems

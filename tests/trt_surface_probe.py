"""Runs the TensorRT backends' code against the real Python bindings of one TensorRT version (imported with link
stubs, so no GPU and no libnvinfer) through recording proxies, and prints every API use that version lacks.

    LD_LIBRARY_PATH=STUBS python tests/trt_surface_probe.py BINDINGS_DIR [--mutation NAME]

The proxies stand in for objects the stubs cannot create (Builder, networks, layers, engines): each attribute read,
attribute write and call is checked against the real class of that version (attribute present, property writable,
call arity accepted by one of the pybind11 signatures in its docstring), and returns a proxy of the documented
return type. Enum members, Dims, Weights and ILogger are the real ones. Problems are collected, not raised, so one
run reports all of them. Output: a JSON list of problems on stdout.
"""

from __future__ import annotations

import enum
import tempfile
import importlib
import inspect
import json
import re
import sys
from pathlib import Path

PROBLEMS: list[str] = []
USED: set[str] = set()  # every API use that was checked
_SIG = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\) -> ([\w.:\[\], ]+)$")


def _signatures(func) -> list[tuple[int, int, list[str], str]]:
    """(required, maximum, names, return type) per overload, from a pybind11 docstring."""
    out = []
    for line in (getattr(func, "__doc__", None) or "").splitlines():
        m = _SIG.match(line.strip())
        if not m:
            continue
        params = [p.strip() for p in _split(m.group(2)) if p.strip()]
        params = [p for p in params if not p.startswith("self")]
        names = [p.split(":")[0].strip() for p in params]
        required = sum(1 for p in params if "=" not in p)
        out.append((required, len(params), names, m.group(3).strip()))
    return out


def _split(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


class Proxy:
    """An instance of a real bindings class that cannot be created here."""

    def __init__(self, module, cls, where: str):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "_where", where)

    def __getattr__(self, name):
        cls = self._cls
        if not hasattr(cls, name):
            PROBLEMS.append(f"{cls.__name__}.{name}: no such attribute")
            raise AttributeError(name)
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, property):
            return _value_for(self._module, _property_type(attr), f"{cls.__name__}.{name}")
        return lambda *a, **k: _call(self._module, getattr(cls, name), f"{cls.__name__}.{name}", a, k)

    def __setattr__(self, name, value):
        cls = self._cls
        USED.add(f"{cls.__name__}.{name}=")
        attr = inspect.getattr_static(cls, name, None)
        if attr is None:
            PROBLEMS.append(f"{cls.__name__}.{name} = ...: no such attribute")
        elif not (isinstance(attr, property) and attr.fset is not None):
            PROBLEMS.append(f"{cls.__name__}.{name} = ...: not a writable property")

    def __bytes__(self):
        return b"\0" * 16

    def __len__(self):
        return 16

    def __bool__(self):
        return True

    def __int__(self):
        return 1

    def __iter__(self):
        return iter([1])


def _property_type(prop: property) -> str:
    doc = (prop.fget.__doc__ or "") if prop.fget else ""
    m = re.search(r"-> ([\w.:\[\], ]+)", doc)
    return m.group(1) if m else "object"


def _value_for(module, type_name: str, where: str):
    short = type_name.split(".")[-1].split("::")[-1].strip()  # C++ names appear where pybind11 lacked the type
    if not hasattr(module, short) and short.startswith("I") and hasattr(module, short[1:]):
        short = short[1:]  # nvinfer1::IEngineInspector is bound as EngineInspector
    if short in ("int", "SupportsInt"):
        return 1
    if short == "bool":
        return True
    if short == "str":
        return "x"
    if short in ("None", "NoneType"):
        return None
    if short == "float":
        return 1.0
    if short == "Dims":
        return module.Dims((2,))
    cls = getattr(module, short, None)
    if isinstance(cls, type) and hasattr(cls, "__members__"):  # a pybind11 enum: a real member
        return next(iter(cls.__members__.values()))
    if isinstance(cls, type):
        return Proxy(module, cls, where)
    return Proxy(module, object, where)


def _call(module, func, where: str, args, kwargs):
    USED.add(f"{where}/{len(args)}")
    sigs = _signatures(func)
    n = len(args)
    if sigs and not any(req <= n + len(kwargs) <= mx and all(k in names for k in kwargs) for req, mx, names, _ in sigs):
        accepted = "; ".join(f"{req}..{mx} args" for req, mx, _, _ in sigs)
        PROBLEMS.append(f"{where}: called with {n} positional + {sorted(kwargs)} keyword arguments; accepts {accepted}")
    ret = sigs[0][3] if sigs else "object"
    return _value_for(module, ret, where)


class ClassProxy:
    def __init__(self, module, cls):
        self._module, self._cls = module, cls

    def __getattr__(self, name):
        return getattr(self._cls, name)  # AttributeError when missing: code must probe with hasattr/getattr

    def __call__(self, *args, **kwargs):
        _call(self._module, self._cls.__init__, f"{self._cls.__name__}()", args, kwargs)
        return Proxy(self._module, self._cls, self._cls.__name__)


class RecordingModule:
    """The bindings module, with classes that cannot be instantiated here replaced by recording proxies."""

    REAL = {"ILogger", "Logger", "Dims", "Weights", "DataType"}

    def __init__(self, real):
        self._real = real
        self.__name__ = real.__name__
        self.__version__ = real.__version__

    def __getattr__(self, name):
        # A missing module attribute raises AttributeError: `hasattr` guards see False, and an unguarded use fails
        # the case, which the probe records with the exception.
        value = getattr(self._real, name)
        if isinstance(value, type) and name not in self.REAL and not hasattr(value, "__members__"):
            return ClassProxy(self._real, value)
        return value


class FakeCuda:
    """cuda-python's runtime API shape: every call succeeds with a dummy handle."""

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __getattr__(self, name):
        return lambda *a, **k: (0, 1)


def apply_mutation(name: str) -> None:
    """Deliberate breakages the probe must catch (tests/test_trt_api_surface.py)."""
    from plugins.tensorrt import compat as trt_compat, runtime as trt_runtime

    if name == "renamed-attribute":
        trt_compat.TrtApi.add_quantize = lambda self, network, x, s, to: network.add_quantize_layer(
            x, s, self.dtype(to)
        )
    elif name == "three-arg-quantize":
        trt_compat.TrtApi.add_quantize = lambda self, network, x, s, to: network.add_quantize(x, s, self.dtype(to))
    elif name == "execute-async-v2":
        original = trt_runtime.EngineRunner.infer

        def infer(self, feeds):
            self.context.execute_async_v2([1, 1], self.stream)
            return original(self, feeds)

        trt_runtime.EngineRunner.infer = infer
    elif name:
        raise SystemExit(f"unknown mutation {name}")


def main() -> None:
    bindings = Path(sys.argv[1])
    mutation = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--mutation" else ""
    sys.path.insert(0, str(bindings))
    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    real = importlib.import_module("tensorrt_bindings")
    from plugins.tensorrt import runtime as trt_runtime
    from harness.cases.load import check_file, iter_case_files
    from harness.cases.errors import QdqError
    from plugins.tensorrt.compat import TrtApi
    from plugins.tensorrt.network import build_engine, make_logger

    apply_mutation(mutation)
    trt_runtime.cuda_runtime = lambda: FakeCuda()
    module = RecordingModule(real)
    # Every case that loads (a broken case file is the case tests' business, not this check's).
    cases = [c for f in iter_case_files([repo / "cases"]) for c in check_file(f, repo / "cases")[0]]
    branches = set()
    scratch = tempfile.TemporaryDirectory()
    timing_cache = Path(scratch.name) / "timing.cache"
    for strongly_typed in (False, True):
        api = TrtApi(module, strongly_typed=strongly_typed)
        branches.add(api.typing)
        for case in cases:
            if case.model is not None:
                continue  # a whole model goes through OnnxParser (network._parse_onnx), which this probe does not drive
            try:
                built = build_engine(api, case, case.target.get("compute_capability"), timing_cache=timing_cache)
            except QdqError:
                continue  # the compatibility layer refused (a type this version lacks): not an API use
            except Exception as exc:
                PROBLEMS.append(f"{case.id}: {type(exc).__name__}: {exc}")
                continue
            runner = trt_runtime.EngineRunner(module, built.plan, make_logger(real))
            try:
                runner.activate()
                runner.layer_information()
                runner.infer(_Feeds())
                runner.deactivate()
            except Exception as exc:
                PROBLEMS.append(f"{case.id} (runtime): {type(exc).__name__}: {exc}")
    scratch.cleanup()
    print(
        json.dumps(
            {
                "version": real.__version__,
                "typing": sorted(branches),
                "used": sorted(USED),
                "problems": sorted(set(PROBLEMS)),
            }
        )
    )


class _Feeds(dict):
    def __missing__(self, key):
        import numpy as np

        return np.zeros(2, np.float32)


if __name__ == "__main__":
    main()

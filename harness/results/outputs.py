"""Where a bundle keeps outputs: one path per (case, backend), one-to-one and inside the bundle whatever the case id
says; arrays as .npz (types numpy lacks as bit patterns), small ones gathered in one pack file per process."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np


from harness.cases import dtypes


_SAFE = "=,+-"  # with quote's own `_.-~` and letters and digits: what a path segment keeps as it is


_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


MAX_SEGMENT = 120  # characters of one encoded segment; longer ones are cut and end in a hash of the whole


def _segment(text: str) -> str:
    """One path segment for any text: percent-encoded (so `/`, NUL, control characters and `..` cannot act as path
    syntax), never empty, hidden, a Windows device name or longer than MAX_SEGMENT. Distinct texts give distinct
    segments: `~` and `@` never survive encoding, so a cut segment (`...~<hash>`) and a `::` part (`@...`) cannot
    collide with an encoded one."""
    import hashlib

    enc = quote(text, safe=_SAFE).replace("~", "%7E")
    if enc.startswith(".") or enc.endswith("."):  # `.`, `..`, hidden files, Windows' dropped trailing dot
        enc = "%2E" + enc[1:] if enc.startswith(".") else enc
        enc = enc[:-1] + "%2E" if enc.endswith(".") else enc
    if enc.split(".")[0].upper() in _RESERVED:
        enc = f"%{ord(enc[0]):02X}" + enc[1:]
    if not enc:
        enc = "%"  # quote never gives a bare `%`: the empty text's own segment
    if len(enc) > MAX_SEGMENT:
        enc = enc[: MAX_SEGMENT - 34].rstrip("%0123456789ABCDEF") + "~" + hashlib.sha256(text.encode()).hexdigest()[:32]
    return enc


def path_safe_id(case_id: str) -> str:
    """A case id as a relative path, one-to-one: the file part's segments (split at `/`), then each `::` part as
    one segment marked `@` (`x::b` -> `x/@b`, the file `x/b.yaml` -> `x/b`: two cases, two paths)."""
    file_part, *parts = case_id.split("::")
    return "/".join([*(_segment(seg) for seg in file_part.split("/")), *("@" + _segment(p) for p in parts)])


def outputs_path(out_dir: Path, case_id: str, backend: str) -> Path:
    path = Path(out_dir) / "outputs" / path_safe_id(case_id) / f"{_segment(backend)}.npz"
    # Guard the encoding's promise: nothing a case names can put a file outside the bundle's outputs.
    if os.path.commonpath([os.path.normpath(path), os.path.normpath(Path(out_dir) / "outputs")]) != os.path.normpath(
        Path(out_dir) / "outputs"
    ):
        raise ValueError(f"case id {case_id!r} maps outside the bundle's outputs folder")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Temporary file + rename, with the permissions a plain open() would give (mkstemp's are 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npz_arrays(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Types numpy lacks as bit patterns, their names in `__dtypes__`."""
    arrays, types = {}, {}
    for name, value in outputs.items():
        value = np.asarray(value)
        t = dtypes.dtype_of(value)
        types[name] = t.name
        arrays[name] = value if t.numpy_native else value.view(np.dtype(f"u{value.dtype.itemsize}"))
    arrays["__dtypes__"] = np.array(json.dumps(types))
    return arrays


def encode_npz(outputs: dict[str, np.ndarray]) -> bytes:
    """Arrays as .npz bytes (see `_npz_arrays`)."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **_npz_arrays(outputs))
    return buf.getvalue()


def decode_npz(data, where: str = "stored outputs") -> dict[str, np.ndarray]:
    """Arrays from .npz bytes or an open file; every array's declared size checked before its data is read."""
    import io
    import zipfile

    from harness.results.bundlecheck import BundleError, check_npz

    try:
        with np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False) as z:
            check_npz(z.zip, where)
            types = json.loads(str(z["__dtypes__"]))
            if not isinstance(types, dict):
                raise BundleError(f"{where}: `__dtypes__` is not an object")
            return {name: z[name].view(dtypes.dtype(t).np_type) for name, t in types.items()}
    except BundleError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError) as exc:
        raise BundleError(f"{where}: not readable outputs ({type(exc).__name__}: {str(exc)[:160]})") from None


PACK_LIMIT = 1 << 20  # outputs up to 1 MiB go to the process's pack; larger ones to their own file


PACK_SUFFIX = ".npzpack"


class OutputStore:
    """Where one process writes outputs: its own pack for small ones (appended, never rewritten: a record made after
    the append names a complete entry), a file each for large ones."""

    def __init__(self, out_dir: Path):
        from harness.results.budget import Allowance

        self.out_dir = Path(out_dir)
        self._pack = None
        self._name = f"outputs/p{os.getpid()}-{os.urandom(4).hex()}{PACK_SUFFIX}"
        self._offset = 0
        self.allowance = Allowance(self.out_dir)

    def save(self, case_id: str, backend: str, outputs: dict[str, np.ndarray]) -> dict:
        """The record's fields naming the stored outputs: `outputs_file`, and `outputs_range` in a pack. Raises
        budget.OutputBudgetExceeded when the run's output budget has no room for them (nothing written)."""
        nbytes = sum(np.asarray(v).nbytes for v in outputs.values())
        if nbytes > PACK_LIMIT:
            self.allowance.take(nbytes + 1024 * (len(outputs) + 1))  # the arrays and their .npz headers
            path = save_outputs(self.out_dir, case_id, backend, outputs)
            return {"outputs_file": path.relative_to(self.out_dir).as_posix()}
        data = encode_npz(outputs)
        self.allowance.take(len(data))
        if self._pack is None:
            (self.out_dir / "outputs").mkdir(parents=True, exist_ok=True)
            self._pack = open(self.out_dir / self._name, "ab")
        self._pack.write(data)
        self._pack.flush()  # in the file (the OS's) before the record that names it exists
        at, self._offset = self._offset, self._offset + len(data)
        return {"outputs_file": self._name, "outputs_range": [at, len(data)]}

    def close(self) -> None:
        if self._pack is not None:
            self._pack.close()
            self._pack = None


def record_outputs(out_dir: Path, record: dict) -> dict[str, np.ndarray]:
    """The outputs a record names (KeyError if it names none). The path must resolve inside the bundle and be a
    regular file, and sizes are checked before anything is read (harness/results/bundlecheck.py): a BundleError if not."""
    from harness.results.bundlecheck import inside, open_regular, read_range

    path = inside(Path(out_dir), record["outputs_file"])
    where = record.get("outputs_range")
    if where is None:
        with open_regular(path) as f:
            return decode_npz(f, str(path))
    offset, length = (int(v) for v in where)
    return decode_npz(read_range(path, offset, length), f"{path} at {offset}")


def save_outputs(out_dir: Path, case_id: str, backend: str, outputs: dict[str, np.ndarray]) -> Path:
    """Streamed to a temporary file, then renamed: no second copy of a large output in memory."""
    path = outputs_path(out_dir, case_id, backend)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **_npz_arrays(outputs))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_outputs(path: Path) -> dict[str, np.ndarray]:
    from harness.results.bundlecheck import open_regular

    with open_regular(Path(path)) as f:
        return decode_npz(f, str(path))


def arrays_hash(inputs: dict[str, np.ndarray]) -> str:
    """A short hash of named arrays (names, types, shapes and bytes): equal hashes, equal tensors."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(inputs):
        a = np.ascontiguousarray(inputs[name])
        h.update(f"{name}:{a.dtype}:{a.shape}:".encode())
        h.update(a.reshape(-1).view(np.uint8).data)  # the buffer itself: no copy of a large tensor
    return h.hexdigest()[:16]

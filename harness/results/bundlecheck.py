"""A bundle read as someone else's input: `qdq compare`, `qdq coverage` and `qdq report` open bundles and packs that
came from other machines, so nothing a bundle says is trusted before it is checked.

- results.json and the journal: regular files within a size limit, JSON of the documented structure (every record
  a mapping with a text case id and a known status; outputs named by a relative path and a range of integers).
- Every path a record names resolves inside the bundle and is a regular file (a FIFO is never opened for reading
  in a way that blocks, `/dev/zero` and `../` are refused).
- Every stored array's size is read from its header and checked against a limit before its data is read (a zip
  bomb is refused by its declared sizes, not by running out of memory); a pack range is checked against its file.
- A packed bundle is extracted only when its declared total fits the limit and the free space, by tarfile's `data`
  filter (no links out, no absolute paths, no devices).

Every refusal is a `BundleError` (a ValueError) whose text names the file and what is wrong, in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from harness.cases import limits

STATUSES = ("pass", "fail", "xfail", "skip", "error")


class BundleError(ValueError):
    """A bundle, pack or stored output that cannot be read as it claims to be."""


class OutputsMissing(BundleError):
    """A record's outputs file is not there (a results.json copied alone): its values cannot be compared."""


def _open_error(path: Path, what: str, exc: OSError) -> BundleError:
    kind = OutputsMissing if isinstance(exc, FileNotFoundError) else BundleError
    return kind(f"{path}: cannot open {what}: {exc.strerror or exc}")


def read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file within `limit` (opened without blocking on a FIFO, never past the limit)."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise BundleError(f"{path}: {what} is {size:,} bytes, over the limit of {limit:,}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{path}: {what} grew past the limit of {limit:,} bytes while read")
    return data


def results_document(path: Path) -> dict:
    """results.json, parsed and checked (see `check_document`)."""
    data = read_regular(path, limits.MAX_RESULTS_BYTES, "results.json")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{path}: not JSON ({str(exc)[:120]})") from None
    check_document(doc, path)
    return doc


def check_document(doc, path: Path) -> None:
    """The structure every reader relies on; the first thing that differs is the error."""
    if not isinstance(doc, dict):
        raise BundleError(f"{path}: a bundle's results.json must be a JSON object, not {type(doc).__name__}")
    records = doc.get("records")
    if not isinstance(records, list):
        raise BundleError(f"{path}: `records` must be a list, not {type(records).__name__}")
    for key in ("cases", "backends"):
        if not isinstance(doc.get(key, {}), dict):
            raise BundleError(f"{path}: `{key}` must be an object")
    if not isinstance(doc.get("diffs", []), list):
        raise BundleError(f"{path}: `diffs` must be a list")
    for i, record in enumerate(records):
        problem = _record_problem(record)
        if problem:
            raise BundleError(f"{path}: records[{i}] {problem}")


def _record_problem(record) -> str | None:
    if not isinstance(record, dict):
        return f"is {type(record).__name__}, not an object"
    if not isinstance(record.get("case_id"), str):
        return "has no text `case_id`"
    if record.get("status") not in STATUSES:
        return f"has status {record.get('status')!r}, not one of {', '.join(STATUSES)}"
    if not isinstance(record.get("backend"), (str, type(None))):
        return "has a `backend` that is not text"
    for key in ("kind", "reason", "outputs_hash", "inputs_hash", "nodeid"):
        if key in record and not isinstance(record[key], (str, type(None))):
            return f"has a `{key}` that is not text"
    if "outputs_file" in record and not isinstance(record["outputs_file"], str):
        return "has an `outputs_file` that is not text"
    where = record.get("outputs_range")
    if where is not None and not (
        isinstance(where, list) and len(where) == 2 and all(type(v) is int and v >= 0 for v in where)
    ):
        return "has an `outputs_range` that is not [offset, length] of non-negative integers"
    return None


def inside(out_dir: Path, relative: str) -> Path:
    """The path a record names, refused unless it is relative and resolves inside the bundle folder."""
    if not relative or os.path.isabs(relative) or "\0" in relative:
        raise BundleError(
            f"{out_dir}: a record names the outputs file {relative[:200]!r}, not a path inside the bundle"
        )
    base = os.path.realpath(out_dir)
    full = os.path.realpath(os.path.join(base, relative))
    if os.path.commonpath([base, full]) != base:
        raise BundleError(f"{out_dir}: a record names the outputs file {relative[:200]!r}, which is outside the bundle")
    return Path(full)


def read_range(path: Path, offset: int, length: int) -> bytes:
    """`length` bytes at `offset` of a regular file, within the pack entry limit and the file's size."""
    if length > limits.MAX_PACK_ENTRY_BYTES:
        raise BundleError(
            f"{path}: a record names {length:,} bytes of a pack, over the limit of "
            f"{limits.MAX_PACK_ENTRY_BYTES:,} for one entry"
        )
    with open_regular(path, "the outputs pack") as f:
        if offset + length > os.fstat(f.fileno()).st_size:
            raise BundleError(f"{path} ends before the {length} bytes at {offset} that the record names")
        f.seek(offset)
        return f.read(length)


def open_regular(path: Path, what: str = "the outputs file"):
    """A regular file opened for reading (without blocking on a FIFO: a FIFO, device or socket is refused before
    any read), else BundleError (OutputsMissing when it is not there)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _open_error(path, what, exc) from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise BundleError(f"{path}: {what} is not a regular file")
    return f


def check_npz(zf, where: str) -> None:
    """Every member of an .npz (a `zipfile.ZipFile`): a plain array whose header's size matches its bytes, each
    within the array limit, before any data is read."""
    import numpy as np
    from numpy.lib import format as npy

    members = zf.infolist()
    if len(members) > limits.MAX_NPZ_MEMBERS:
        raise BundleError(f"{where}: {len(members):,} arrays in one .npz, over the limit of {limits.MAX_NPZ_MEMBERS:,}")
    for info in members:
        if info.file_size > limits.MAX_STORED_ARRAY_BYTES + 4096:
            raise BundleError(
                f"{where}: {info.filename} unpacks to {info.file_size:,} bytes, over the limit of "
                f"{limits.MAX_STORED_ARRAY_BYTES:,}"
            )
        with zf.open(info) as member:
            try:
                version = npy.read_magic(member)
                shape, _, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(
                    member
                )
            except (ValueError, OSError, SyntaxError) as exc:
                raise BundleError(f"{where}: {info.filename} is not a plain .npy array ({str(exc)[:120]})") from None
            header = member.tell()
        if dtype.hasobject:
            raise BundleError(f"{where}: {info.filename} holds Python objects (never loaded)")
        size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if size > limits.MAX_STORED_ARRAY_BYTES or header + size != info.file_size:
            raise BundleError(
                f"{where}: {info.filename} declares {size:,} bytes of data in {info.file_size:,} "
                f"(limit {limits.MAX_STORED_ARRAY_BYTES:,})"
            )


def safe_extract(archive: Path, into: Path) -> Path:
    """A `qdq pack` archive extracted into `into` (its `bundle/` folder returned) after its declared total size and
    member count are checked against the limits and the free space; a refusal leaves nothing behind."""
    import tarfile
    import zlib

    total, count = 0, 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                count += 1
                total += max(member.size, 0)
                if count > limits.MAX_ARCHIVE_MEMBERS:
                    raise BundleError(f"{archive}: over {limits.MAX_ARCHIVE_MEMBERS:,} files in one pack")
                if total > limits.MAX_ARCHIVE_BYTES:
                    raise BundleError(
                        f"{archive}: unpacks to over {limits.MAX_ARCHIVE_BYTES:,} bytes, the limit for a pack"
                    )
            into.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(into).free
            if total > free - (64 << 20):
                raise BundleError(f"{archive}: unpacks to {total:,} bytes; {into} has {free:,} free")
            tar.extractall(into, filter="data")
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        shutil.rmtree(into, ignore_errors=True)
        raise BundleError(f"{archive}: not a readable qdq pack ({type(exc).__name__}: {str(exc)[:160]})") from None
    folder = into / "bundle"
    if not (folder / "results.json").is_file():
        raise BundleError(f"{archive}: a qdq pack holds bundle/results.json; this one does not")
    return folder

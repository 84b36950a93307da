"""What pytest collects from case files: the run's state, the folders and files that hold cases, and one item per
(case, backend); an item runs its case through the engine's Executor and reports the verdict."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.results import bundle as bundle_mod
from harness.engine import skips
from harness.cases.case import Case
from harness.cases.load import CASE_SUFFIXES, CaseFileError, check_file, find_root
from harness.cases.parsecache import ParseCache
from harness.engine.config import RunConfig
from harness.engine.run import Executor, Record
from harness.engine.verdict import Verdict, make
from harness.cases.limits import MAX_FILE_BYTES
from harness.cases.yamlread import read_bytes


RECORD_KEY = "qdq_record"


RESUME_DONE = ".resume-done.json"  # the items a resumed bundle holds, as the controller saw them at the start


@dataclass
class RunState:
    backends: list[str]
    out_dir: Path | None
    root: Path | None
    is_worker: bool
    config: RunConfig = field(default_factory=RunConfig.defaults)
    case_paths: list[Path] = field(default_factory=list)  # folders/files of cases not under a folder named `cases`
    lock: object = None  # the open file holding the bundle folder's flock
    writer: bundle_mod.BundleWriter | None = None
    executor: Executor | None = None
    scratch: Path | None = None  # a temporary bundle folder when no --qdq-out is given (the diff reads outputs)
    parse_cache: ParseCache | None = None  # parsed case files kept across runs and processes
    folders: dict = field(default_factory=dict)  # folder -> (in a case folder?, cases root): the same for its files
    case_ids: dict = field(default_factory=dict)  # case id -> (file, line) of the first case collected with it
    allure_writes: list = field(default_factory=list)  # the background writers of allure-pytest's result files
    shard: tuple[int, int] | None = None  # (k, n): this process runs the k-th (from 0) of n shares of the cases
    split_files: set = field(default_factory=set)  # in a share: files whose cases are shared out one by one

    def takes(self, key: str) -> bool:
        """Whether this process runs what `key` names (a case id, or the id stem of a whole file): every process of
        a sharded run computes the same answer, and all backends of a case fall in one share (the cross-backend
        diff of a case needs them all)."""
        if self.shard is None:
            return True
        # blake2b, not crc32: a CRC is linear, so ids that differ in a digit or two (a matrix) can all share a parity
        digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.shard[1] == self.shard[0]

    def drain_allure_writes(self) -> None:
        for writes in self.allure_writes:
            writes.drain()

    @property
    def tier(self) -> str:
        return self.config.tier


STATE = pytest.StashKey[RunState]()


def _absolute(path) -> Path:
    """Absolute, not resolved: a symlinked case file belongs to the folder it was found in."""
    return Path(os.path.abspath(path))


def _folder_facts(folder: str, state: RunState) -> tuple[bool, Path]:
    """Whether files in this folder are cases, and their root: asked once per folder, not once per file."""
    facts = state.folders.get(folder)
    if facts is None:
        marker = Path(folder) / "\0"  # any name: a file's answers depend only on its folder (a file named in
        facts = state.folders[folder] = (_in_case_folder(marker, state), root_for(marker, state))  # --qdq-cases aside)
    return facts


def _in_case_folder(path: Path, state: RunState) -> bool:
    here = _absolute(path)
    if state.root and here.is_relative_to(state.root):
        return True
    if any(here == p or here.is_relative_to(p) for p in state.case_paths):
        return True
    return any(parent.name == "cases" for parent in here.parents) or here.name == "cases"


def _is_case_file(path: Path, state: RunState) -> bool:
    if path.suffix not in CASE_SUFFIXES:
        return False
    here = os.path.abspath(path)
    return _folder_facts(os.path.dirname(here), state)[0] or Path(here) in state.case_paths


def root_for(path: Path, state: RunState) -> Path:
    """The cases root of a file (where its data must stay; what its id is relative to): `--qdq-root`, else the
    nearest folder named `cases`, else the `--qdq-cases` folder it was found in, else its own folder."""
    here = _absolute(path)
    if state.root and here.is_relative_to(state.root):
        return state.root
    if any(parent.name == "cases" for parent in here.parents):
        return find_root(here)
    folders = [p for p in state.case_paths if here.is_relative_to(p) and p != here]
    return max(folders, key=lambda p: len(p.parts)) if folders else here.parent


MATRIX_KEY = re.compile(rb"(?m)(^|[{,\s])matrix\s*:")


def shard_takes_file(path: Path, state: RunState) -> bool:
    """In one share of a sharded run: whether this process collects the file. A file is taken whole by the share of
    its id stem (the path under its root, which every case id in it starts with: two files that could give one id
    fall in one share, where the clash is found), so a share reads only its own files; a file with a `matrix` (one
    file, thousands of cases) is read by every share and its cases shared out one by one."""
    if state.shard is None:
        return True
    here = os.path.abspath(path)
    if _has_matrix(here):
        state.split_files.add(here)
        return True
    return state.takes(_id_stem(here, state))


def _has_matrix(path: str) -> bool:
    """Whether the file's text has a `matrix:` key: read with os calls only (every share reads every file), never
    blocking on a FIFO, never past the size limit; a file that cannot be read has none (its share reports it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return MATRIX_KEY.search(os.read(fd, MAX_FILE_BYTES + 1)) is not None
    except OSError:
        return False
    finally:
        os.close(fd)


def _id_stem(path: str, state: RunState) -> str:
    """The file's path under its cases root without the suffix, as its case ids start (harness/cases/load.py)."""
    root = str(_folder_facts(os.path.dirname(path), state)[1])
    rel = path[len(root) + 1 :] if path.startswith(root + os.sep) else os.path.basename(path)
    return os.path.splitext(rel)[0].replace(os.sep, "/")


class CasesDir(pytest.Dir):
    """pytest's folder collector, plus an item for anything named *.yaml that is not a regular file (a FIFO, a
    device): pytest would skip it in silence; it is reported, never opened."""

    def collect(self):
        yield from super().collect()
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            if Path(entry.name).suffix in CASE_SUFFIXES and not entry.is_file() and not entry.is_dir():
                yield CaseFile.from_parent(self, path=Path(entry.path))


def _local_name(case: Case) -> str:
    parts = case.id.split("::")
    local = parts[1] if len(parts) > 1 and not case.params else parts[0].rsplit("/", 1)[-1]
    if case.params:
        named = parts[1] if len(parts) == 3 else parts[0].rsplit("/", 1)[-1]
        local = f"{named}({','.join(f'{k}={v}' for k, v in case.params.items())})"
    return local


def identify(nodeid: str, rootdir: Path, state: RunState) -> tuple[str, str | None]:
    """(case id, backend) of an item known only by its node id (an item whose process died before it could say):
    its file is loaded again and the item name matched. Falls back to the file's path when nothing matches."""
    file_part, _, name = _stable(nodeid).partition("::")
    backend = name.rsplit("[", 1)[-1].rstrip("]") if name.endswith("]") else None
    local = name.rsplit("[", 1)[0]
    path = rootdir / file_part
    cases, _ = check_file(path, root_for(path, state))
    for case in cases:
        if _local_name(case) == local:
            return case.id, backend
    return file_part, backend


class CaseFile(pytest.File):
    def collect(self):
        state = self.config.stash[STATE]
        root = _folder_facts(os.path.dirname(os.path.abspath(self.path)), state)[1]
        split = os.path.abspath(self.path) in state.split_files
        if state.shard is not None and not split and not state.takes(_id_stem(os.path.abspath(self.path), state)):
            return  # another share's file (one pytest_collect_file did not see: a FIFO, a device)
        cases, errors = check_file(self.path, root, state.parse_cache)
        owned = not split or state.takes(str(self.path))  # the file's own problems: reported by one share
        for error in errors if owned else ():
            yield InvalidCaseItem.from_parent(
                self, name=f"{self.path.stem}[invalid-case-file:{error.line}]", error=error
            )
        clashes = set()
        for case in cases:
            first = state.case_ids.setdefault(case.id, (self.path, case.line))
            if first[0] != self.path:  # two files, one id: one would take the other's record and outputs
                if case.line in clashes:
                    continue
                clashes.add(case.line)
                if not owned:
                    continue
                error = CaseFileError(
                    self.path,
                    case.line,
                    f"case id {case.id!r} is also the id of a case in "
                    f"{first[0]}:{first[1]}; one id, one case (rename one, or give --qdq-root)",
                )
                yield InvalidCaseItem.from_parent(
                    self, name=f"{self.path.stem}[invalid-case-file:{case.line}]", error=error
                )
                continue
            if (case.tier == "full" and state.tier != "full") or (split and not state.takes(case.id)):
                continue
            local = _local_name(case)
            for name in state.backends:
                yield CaseItem.from_parent(self, name=f"{local}[{name}]", case=case, backend_name=name)


class CaseFailure(AssertionError):
    """A verdict of fail: the report shows its message, prefixed by the verdict kind."""


class BackendCrash(Exception):
    """A verdict of error: the backend or harness crashed (reported as 'broken', not 'failed')."""


def _allure_active(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("allure_pytest") and bool(config.getoption("allure_report_dir", None))


def alluredir(config: pytest.Config) -> Path | None:
    return Path(config.getoption("allure_report_dir")) if _allure_active(config) else None


class _QdqItem(pytest.Item):
    def _record(self, record: Record) -> None:
        self.user_properties.append((RECORD_KEY, json.dumps(record.as_dict(), default=bundle_mod.json_default)))

    @property
    def stable_nodeid(self) -> str:
        return _stable(self.nodeid)

    def _conclude(self, verdict: Verdict) -> None:
        if verdict.status == "pass":
            return
        if verdict.status == "skip":
            pytest.skip(f"{skips.tag(verdict.skip_kind)} {verdict.reason}")
        if verdict.status == "xfail":
            pytest.xfail(verdict.message)
        if verdict.status == "error":
            raise BackendCrash(verdict.message + "\n" + verdict.metrics.get("traceback", ""))
        raise CaseFailure(verdict.message)

    def repr_failure(self, excinfo, style=None):
        # A verdict's message is the whole story: no pytest traceback (long ones cost 40% of a run and fill the
        # Allure history), also for declared deviations, which pytest reports through xfail.
        if isinstance(excinfo.value, (CaseFailure, BackendCrash, pytest.xfail.Exception)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


class InvalidCaseItem(_QdqItem):
    def __init__(self, *, error: CaseFileError, **kw):
        super().__init__(**kw)
        self.error = error
        root = root_for(self.path, self.config.stash[STATE])
        here = _absolute(self.path)
        # The file's path under its cases root, suffix kept: `x.yml` beside `x.yaml` stay two rows.
        self.file_id = here.relative_to(root).as_posix() if here.is_relative_to(root) else self.path.name

    def runtest(self) -> None:
        verdict = make("invalid-case-file", str(self.error))
        self._record(Record.of(self.stable_nodeid, None, self.file_id, None, verdict))
        if _allure_active(self.config):
            import allure

            allure.dynamic.title(f"invalid case file {self.path.name}")
            allure.dynamic.feature("invalid case files")
            data, refusal = read_bytes(self.path)  # never opens a FIFO, never reads past the size limit
            allure.attach(
                data.decode(errors="replace") if data is not None else refusal,
                name=self.path.name,
                attachment_type=allure.attachment_type.TEXT,
            )
        self._conclude(verdict)

    def reportinfo(self):
        return self.path, self.error.line - 1, f"invalid case file {self.path.name}"


class CaseItem(_QdqItem):
    """One case on one backend: `Executor.run`, its record, its Allure result."""

    def __init__(self, *, case: Case, backend_name: str, **kw):
        super().__init__(**kw)
        self.case = case
        self.backend_name = backend_name
        self.add_marker(pytest.mark.xdist_group(case.id))  # cache locality only: no item needs another's state
        self.extra_keyword_matches.update(case.tags)  # `-k int8` selects by tag

    def reportinfo(self):
        return self.path, self.case.line - 1, f"{self.case.id} on {self.backend_name}"

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        verdict, version, outcome, extra = state.executor.run(self.case, self.backend_name)
        record = Record.of(
            self.stable_nodeid, self.case, self.case.id, self.backend_name, verdict, backend_version=version, **extra
        )
        record.source = {"path": str(_absolute(self.case.file)), "root": str(self.case.root)}
        self._record(record)
        if _allure_active(self.config):
            from harness.report import allure as report

            report.label_item(self.case, self.backend_name, version)
            report.attach_case(self.case, self.backend_name, outcome, verdict, version)
        self._conclude(verdict)


def _stable(nodeid: str) -> str:
    """The node id without the `@group` suffix xdist's loadgroup appends: the same with and without `-n`."""
    return nodeid.split("@")[0] if "]@" in nodeid else nodeid

"""How a case file's problems are gathered: each one `file:line: message`, once, in line order; the line of any
key path of the YAML document."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CaseFileError(Exception):
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class LineMap:
    """Maps a path of keys/indices in the YAML document to its 1-based line (filled by `yamlread.read`)."""

    def __init__(self, lines: dict[tuple, int] | None = None):
        self.lines: dict[tuple, int] = lines or {}

    def line(self, path: tuple) -> int:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


class CaseLines:
    """Line lookup for one case of a file: its own keys first, then keys shared at the file's top level."""

    def __init__(self, lines: LineMap, prefix: tuple):
        self.lines, self.prefix = lines, prefix

    def __call__(self, *path: Any) -> int:
        own = (*self.prefix, *path)
        if self.prefix and path and own[: len(self.prefix) + 1] not in self.lines.lines:
            return self.lines.line(path)  # the key is shared, written at the top level
        return self.lines.line(own)


class Problems:
    """The problems of one file, each once (a matrix repeats them per combination), in line order."""

    def __init__(self, path: Path):
        self.path = path
        self.found: dict[tuple[int, str], CaseFileError] = {}

    def add(self, line: int, message: str) -> None:
        self.found.setdefault((line, message), CaseFileError(self.path, line, message))

    def collect(self):
        """`with problems.collect():` records a CaseFileError raised inside and carries on after the block."""
        return Collect(self)

    def sorted(self) -> list[CaseFileError]:
        return [self.found[k] for k in sorted(self.found)]


class Collect:
    def __init__(self, problems: Problems):
        self.problems = problems

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, CaseFileError):
            self.problems.add(exc.line, exc.message)
            return True
        return False

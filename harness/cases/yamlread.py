"""One case file read safely: a regular file within the size limit, YAML within the nesting and node limits,
no duplicate or non-text keys, and a map from each key path to its line. Composed once (libyaml when installed),
then constructed with the safe constructor: never `eval`, never a Python tag.

Every problem is a `(line, message)`; nothing here raises on bad input.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.cases import limits
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the same safe constructor, 10x faster parsing
_OPEN = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


@dataclass
class ReadResult:
    data: bytes = b""
    doc: Any = None
    lines: dict[tuple, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)
    stat: os.stat_result | None = None  # of the file `data` was read from, taken before reading it


def read_bytes(path: Path) -> tuple[bytes | None, str | None]:
    """The file's bytes, or why it is refused: never opens a FIFO or device, never reads past the size limit."""
    data, refusal, _ = read_bytes_and_stat(path)
    return data, refusal


def read_bytes_and_stat(path: Path) -> tuple[bytes | None, str | None, os.stat_result | None]:
    """`read_bytes`, and the stat of the file the bytes came from, taken from the open file before reading (what a
    cache may key those bytes by: a stat taken by path later may describe another file put in its place)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}", None
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file (a FIFO, device or socket is never opened)", None
    if st.st_size > limits.MAX_FILE_BYTES:
        return (
            None,
            (
                f"the file is {st.st_size:,} bytes, over the limit of {limits.MAX_FILE_BYTES:,}; "
                "put large data in a .npy file"
            ),
            None,
        )
    try:
        with open(path, "rb") as f:
            opened = os.fstat(f.fileno())
            data = f.read(limits.MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}", None
    if len(data) > limits.MAX_FILE_BYTES:
        return None, f"the file grew past the limit of {limits.MAX_FILE_BYTES:,} bytes while read", None
    return data, None, opened


def read(path: Path) -> ReadResult:
    result = ReadResult()
    data, refusal, result.stat = read_bytes_and_stat(path)
    if refusal:
        result.problems.append((1, refusal))
        return result
    result.data = data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        result.problems.append((line, f"not UTF-8 text: {exc.reason} at byte {exc.start}"))
        return result
    if _Loader is yaml.SafeLoader:
        # The pure-Python composer recurses: refuse deep nesting before it overflows the stack. libyaml refuses
        # nesting past 1000 itself, and the node walk below enforces the limit for both.
        problem = _nesting_problem(text)
        if problem:
            result.problems.append(problem)
            return result
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            result.problems.append((1, "the file is empty"))
            return result
        try:
            result.doc = _construct_plain(loader, node, result.lines)
            return result
        except Exception:  # anything unusual, or a problem: the two passes below find it and say what it is
            result.lines.clear()
        problems = _check_nodes(node, result.lines)
        if problems:
            result.problems.extend(problems)
            return result
        result.doc = loader.construct_document(node)
    except yaml.YAMLError as exc:
        result.problems.append(_yaml_error(exc))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a scalar the constructor chokes on
        result.problems.append((1, f"cannot read the YAML: {type(exc).__name__}: {exc}"))
    finally:
        loader.dispose()
    return result


def _yaml_error(exc: yaml.YAMLError) -> tuple[int, str]:
    """The line where the faulty construct starts (an unclosed quote: where it opens), and what is wrong."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    if context_mark is not None and problem_mark is not None and context_mark.line != problem_mark.line:
        return context_mark.line + 1, f"YAML syntax error: {context} here, {problem} (line {problem_mark.line + 1})"
    mark = problem_mark or context_mark
    return (mark.line + 1 if mark else 1), f"YAML syntax error: {(context + ', ') if context else ''}{problem}"


def _nesting_problem(text: str) -> tuple[int, str] | None:
    """Collections nested deeper than the limit, found by the (iterative) scanner before the (recursive) composer
    would overflow the stack."""
    depth = 0
    try:
        for token in yaml.scan(text, Loader=_Loader):
            if isinstance(token, _OPEN):
                depth += 1
                if depth > limits.MAX_NESTING:
                    return (token.start_mark.line + 1, f"collections nested more than {limits.MAX_NESTING} deep")
            elif isinstance(token, _CLOSE):
                depth -= 1
    except yaml.YAMLError as exc:
        return _yaml_error(exc)
    return None


_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ = (_TAG + t for t in ("str", "int", "float", "bool", "null", "map", "seq"))


class _Unusual(Exception):
    """What the single pass leaves to the two passes: an alias, a merge key, another tag, anything over a limit."""


def _construct_plain(loader, root: yaml.Node, lines: dict[tuple, int]) -> Any:
    """The document in one pass, for what case files are made of (mappings with text keys, sequences, text, numbers,
    booleans, null): the values the safe constructor makes (its own scalar methods), and the key path -> line map.
    Raises on anything else; the two passes (`_check_nodes`, then the safe constructor) then take the file."""
    count = 0
    seen: set[int] = set()

    def walk(node: yaml.Node, path: tuple) -> Any:
        nonlocal count
        count += 1
        if count > limits.MAX_NODES or len(path) > limits.MAX_NESTING or id(node) in seen:
            raise _Unusual
        seen.add(id(node))
        if path not in lines:
            lines[path] = node.start_mark.line + 1
        tag = node.tag
        if tag == _MAP and isinstance(node, yaml.MappingNode):
            out = {}
            for key, value in node.value:
                if key.tag != _STR or not isinstance(key, yaml.ScalarNode) or key.value in out:
                    raise _Unusual  # a merge key, a key that is not text, a duplicate
                here = (*path, key.value)
                lines[here] = key.start_mark.line + 1
                out[key.value] = walk(value, here)
            return out
        if tag == _SEQ and isinstance(node, yaml.SequenceNode):
            return [walk(item, (*path, i)) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.ScalarNode):
            raise _Unusual
        if tag == _STR:
            return node.value
        if tag in (_INT, _FLOAT):
            if len(node.value) > limits.MAX_NUMBER_CHARS:
                raise _Unusual
            return loader.construct_yaml_int(node) if tag == _INT else loader.construct_yaml_float(node)
        if tag == _BOOL:
            return loader.construct_yaml_bool(node)
        if tag == _NULL:
            return None
        raise _Unusual

    return walk(root, ())


def _check_nodes(root: yaml.Node, lines: dict[tuple, int]) -> list[tuple[int, str]]:
    """Expanded size (aliases counted every time they are used), duplicate keys, keys that are not text, numbers too
    long to read; fills `lines` with key path -> line. Iterative, and each node is visited once."""
    problems: list[tuple[int, str]] = []
    size: dict[int, int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple, bool]] = [(root, (), False)]
    while stack:
        node, path, done = stack.pop()
        if done:
            size[id(node)] = 1 + sum(size.get(id(c), 1) for c in _children(node))
            if size[id(node)] > limits.MAX_NODES:
                return [
                    (
                        node.start_mark.line + 1,
                        f"the YAML expands to more than {limits.MAX_NODES:,} values "
                        "(anchors and aliases count each time they are used)",
                    )
                ]
            continue
        if len(path) > limits.MAX_NESTING:
            return [(node.start_mark.line + 1, f"collections nested more than {limits.MAX_NESTING} deep")]
        if path not in lines:
            lines[path] = node.start_mark.line + 1
        if id(node) in seen:  # an alias of a node already walked: its size is known
            continue
        seen.add(id(node))
        stack.append((node, path, True))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if key.tag == "tag:yaml.org,2002:merge":
                    stack.append((value, path, False))
                    continue
                if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                    shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
                    problems.append((line, f"key {shown!r} is not text (write it in quotes)"))
                    continue
                if key.value in keys:
                    problems.append((line, f"duplicate key {key.value!r} (first on line {keys[key.value]})"))
                    continue
                keys[key.value] = line
                lines[(*path, key.value)] = line
                stack.append((value, (*path, key.value), False))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*path, i), False))
        elif (
            node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
            and len(node.value) > limits.MAX_NUMBER_CHARS
        ):
            problems.append(
                (
                    node.start_mark.line + 1,
                    f"a number of {len(node.value)} characters, over the limit of {limits.MAX_NUMBER_CHARS}",
                )
            )
    return sorted(set(problems))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []

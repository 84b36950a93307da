"""Options a backend family declares for the run (entry point group `qdq_harness.options`): the engine adds each as
`--NAME` to `qdq run`, `qdq repro` and `qdq export` and as `--qdq-NAME` to pytest, and carries its value in the run
configuration (`RunConfig.option(NAME)`) to every worker, so a run and a repro script read the same value through
the same rule. The engine knows no option by name: the ONNX family declares `opset`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Callable

GROUP = "qdq_harness.options"
_TYPES: dict[str, Callable[[str], object]] = {"int": int, "float": float, "str": str}


@dataclass(frozen=True)
class BackendOption:
    name: str  # the configuration key; `--NAME` on the command line, `--qdq-NAME` for pytest
    type: str = "str"  # int | float | str
    help: str = ""
    metavar: str | None = None
    family: str = ""  # filled in from the entry point's name

    @property
    def parse(self) -> Callable[[str], object]:
        return _TYPES[self.type]


@lru_cache(maxsize=1)
def declared() -> tuple[BackendOption, ...]:
    """Every declared option, first declaration of a name wins; a broken entry point declares nothing (its
    backends are listed as broken by their own group)."""
    found: dict[str, BackendOption] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            options = list(ep.load())
        except Exception:  # noqa: BLE001 - one broken family must not stop the command line
            continue
        for option in options:
            if isinstance(option, BackendOption) and option.type in _TYPES and option.name not in found:
                found[option.name] = BackendOption(option.name, option.type, option.help, option.metavar, ep.name)
    return tuple(found.values())


def add_arguments(parser, prefix: str = "--") -> None:
    """Each declared option on an argparse parser (or a pytest option group, which takes the same arguments)."""
    add = getattr(parser, "addoption", None) or parser.add_argument
    for option in declared():
        add(
            f"{prefix}{option.name}",
            type=option.parse,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} (declared by the {option.family} backends)",
        )


def values(get: Callable[[str], object]) -> dict[str, object]:
    """{name: value} of the options given, `get(name)` reading one (None when not given)."""
    out = {}
    for option in declared():
        value = get(option.name)
        if value is not None:
            out[option.name] = value
    return out

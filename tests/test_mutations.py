"""The case library catches plausible bugs: each mutation of tests/mutations.py, planted in the numpy reference,
must turn at least MIN_CAUGHT cases to fail or error. Prints the table (cases that catch each planted bug)."""

from __future__ import annotations

import pytest

from conftest import REPO
from mutations import MUTATIONS, caught, load_library, statuses

MIN_CAUGHT = 3


@pytest.fixture(scope="module")
def library():
    cases = load_library(REPO / "cases")
    return cases, statuses(cases)


def test_the_unmutated_reference_meets_every_case(library):
    cases, baseline = library
    assert len(baseline) > 300  # the library was found and run, not an empty folder
    wrong = {c: s for c, s in baseline.items() if s not in ("pass", "xfail")}
    assert not wrong, wrong


def test_every_planted_bug_is_caught_by_several_cases(library, capsys):
    cases, baseline = library
    table = {name: caught(cases, baseline, mutation) for name, mutation in MUTATIONS.items()}
    with capsys.disabled():
        print("\n\n| planted bug | cases that catch it | e.g. |\n|---|---|---|")
        for name, found in table.items():
            print(f"| {name} | {len(found)} | {', '.join(found[:2])} |")
    weak = {name: found for name, found in table.items() if len(found) < MIN_CAUGHT}
    assert not weak, f"caught by fewer than {MIN_CAUGHT} cases: {weak}"


def test_a_mutation_is_undone_after_its_run(library):
    """The patches must not leak: the reference after all mutations gives the baseline again."""
    cases, baseline = library
    for mutation in MUTATIONS.values():
        caught(cases, baseline, mutation)
    assert statuses(cases) == baseline

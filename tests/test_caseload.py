import json
import re

import pytest

from harness.cases import dtypes

from harness.cases import errors
from harness.cases.load import CaseFileError, check_file, load_file
from harness.cases.schemacheck import schema

from conftest import MINIMAL


def test_single_case_id_is_the_path_without_suffix(load_case):
    (case,) = load_case(MINIMAL, "rules/axis/one.yaml")
    assert case.id == "rules/axis/one"


def test_multi_case_and_matrix_ids(load_case):
    cases = load_case(
        """
        source: {document: d}
        outputs: [y]
        inputs: {x: [1, 2]}
        cases:
          - name: a
            title: t
            network:
              - {op: input, name: x, dtype: "${dtype}", shape: [2]}
              - {op: constant, name: s, dtype: "${dtype}", shape: [], value: 1}
              - {op: quantize, name: y, input: x, scale: s, axis: "${axis}", to: int8}
            matrix: {dtype: [float32, float16], axis: [0, -1]}
            expect: reference
          - name: b
            title: t
            network:
              - {op: input, name: x, dtype: float32, shape: [2]}
              - {op: constant, name: s, dtype: float32, shape: [], value: 1}
              - {op: quantize, name: y, input: x, scale: s, to: int8}
            expect: reference
    """,
        "m.yaml",
    )
    assert [c.id for c in cases] == [
        "m::a::dtype=float32,axis=0",
        "m::a::dtype=float32,axis=-1",
        "m::a::dtype=float16,axis=0",
        "m::a::dtype=float16,axis=-1",
        "m::b",
    ]
    assert cases[3].layers["x"].dtype == "float16" and cases[3].layers["y"].axis == -1  # types kept, not strings


def test_numbers_yaml_reads_as_strings_are_parsed(load_case):
    (case,) = load_case(MINIMAL.replace("inputs: {x: [1, 2]}", "inputs: {x: [1e-3, nan]}"))
    from harness.engine.execute import make_inputs

    x = make_inputs(case)["x"]
    assert x[0] == pytest.approx(1e-3) and x[0].dtype.name == "float32" and x[1] != x[1]


def _one_error(write_case, cases_dir, relpath, text):
    path = write_case(relpath, text)
    cases, errors_ = check_file(path, cases_dir)
    assert len(errors_) == 1, errors_
    line = str(errors_[0])
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: .+", line) and "\n" not in line
    return errors_[0]


def test_yaml_syntax_error_names_the_line(write_case, cases_dir):
    err = _one_error(write_case, cases_dir, "bad/syntax.yaml", MINIMAL.replace("outputs: [y]", "outputs: [y"))
    # The unclosed `[y` on line 7 is noticed at the `:` of line 8: the error names the line where it opens.
    assert err.line == 7 and "YAML syntax error" in err.message and "(line 8)" in err.message


def test_unknown_layer_type(write_case, cases_dir):
    err = _one_error(write_case, cases_dir, "bad/op.yaml", MINIMAL.replace("op: quantize", "op: quantise"))
    assert err.line == 6 and "unknown layer type 'quantise'" in err.message


def test_input_naming_an_undefined_tensor(write_case, cases_dir):
    err = _one_error(write_case, cases_dir, "bad/ref.yaml", MINIMAL.replace("input: x,", "input: nothing,"))
    assert err.line == 6 and "'nothing' names no tensor defined before it" in err.message


def test_data_file_outside_cases(write_case, cases_dir, tmp_path):
    import numpy as np

    np.save(tmp_path / "outside.npy", np.zeros(2, np.float32))
    err = _one_error(
        write_case,
        cases_dir,
        "bad/npy.yaml",
        MINIMAL.replace("inputs: {x: [1, 2]}", "inputs: {x: {npy: ../../outside.npy}}"),
    )
    assert err.line == 8 and "outside the cases folder" in err.message


def test_npy_inside_cases_loads_without_pickle(write_case, cases_dir):
    import numpy as np

    np.save(
        cases_dir / "t" / "x.npy" if (cases_dir / "t").exists() else _mk(cases_dir / "t") / "x.npy",
        np.array([3, 4], np.float32),
    )
    (case,) = load_file(
        write_case("t/npy.yaml", MINIMAL.replace("inputs: {x: [1, 2]}", "inputs: {x: {npy: x.npy}}")), cases_dir
    )
    from harness.engine.execute import make_inputs

    assert make_inputs(case)["x"].tolist() == [3, 4]


def _mk(p):
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.mark.parametrize(
    "change, fragment",
    [
        (("value: 1}", "value: abc}"), "cannot read 'abc' as a number"),
        (("inputs: {x: [1, 2]}", "inputs: {x: [1, 2, 3]}"), "does not fit the declared shape"),
        (("expect: reference", "expect: {error: {category: no-such-category}}"), "expect"),
        (("outputs: [y]", "outputs: [z]"), "output 'z' names no tensor"),
        (
            (
                "expect: reference",
                "expect: reference\noverrides: [{backend: onnxruntime, version: 'not a spec', expect: observe, reason: r}]",
            ),
            "not a version specifier",
        ),
        (("title: t", "title: t\nunknown_key: 1"), "unknown_key"),
    ],
)
def test_other_structure_problems(write_case, cases_dir, change, fragment):
    err = _one_error(write_case, cases_dir, "bad/x.yaml", MINIMAL.replace(*change))
    assert fragment in err.message


def test_never_evaluates_case_text(write_case, cases_dir, tmp_path):
    marker = tmp_path / "pwned"
    text = MINIMAL.replace("value: 1}", f"value: \"__import__('pathlib').Path('{marker}').touch()\"}}")
    _one_error(write_case, cases_dir, "bad/eval.yaml", text)
    assert not marker.exists()


def test_python_object_tags_are_refused(write_case, cases_dir):
    err = _one_error(
        write_case,
        cases_dir,
        "bad/tag.yaml",
        MINIMAL.replace("value: 1}", "value: !!python/object/apply:os.system ['true']}"),
    )
    assert "YAML" in err.message


def test_schema_vocabularies_match_the_code():
    defs = schema()["$defs"]
    assert set(defs["category"]["enum"]) == set(errors.CATEGORIES)
    assert set(defs["dtype"]["enum"]) == set(dtypes.NAMES)


def test_every_repository_case_is_valid():
    from pathlib import Path

    from harness.cases.load import iter_case_files

    root = Path(__file__).resolve().parent.parent / "cases"
    problems = [str(e) for f in iter_case_files([root]) for e in check_file(f, root)[1]]
    assert problems == []


def test_load_file_raises_the_first_problem(write_case, cases_dir):
    with pytest.raises(CaseFileError):
        load_file(write_case("bad/y.yaml", "[1, 2]"), cases_dir)


def test_schema_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())
    assert json.dumps(schema())


def test_every_problem_of_a_file_is_reported_at_its_own_line(write_case, cases_dir):
    text = """\
title: t
source: {document: d}
network:
  - {op: input, name: x, dtype: float32, shape: [2]}
  - {op: constant, name: s, dtype: float32, shape: [], value: "1/0"}
  - {op: quantize, name: q, input: x, scale: t, to: int8}
  - {op: dequantize, name: y, input: q, scale: s, to: float32}
outputs: [y]
inputs: {x: [1, 2, 3]}
expect: {values: [1, 2], tolerance: {atol: abc}}
"""
    _, problems = check_file(write_case("bad/many.yaml", text), cases_dir)
    found = [(p.line, p.message) for p in problems]
    assert [line for line, _ in found] == [5, 6, 9, 10], found
    assert "division by zero" in found[0][1]
    assert "scale 't' names no tensor" in found[1][1]
    assert "does not fit the declared shape" in found[2][1]
    assert "cannot read 'abc'" in found[3][1]


def test_a_matrix_reports_a_problem_once_not_once_per_combination(write_case, cases_dir):
    text = MINIMAL.replace("value: 1}", "value: abc}") + "matrix: {k: [1, 2, 3]}\n"
    _, problems = check_file(write_case("bad/m.yaml", text), cases_dir)
    assert len(problems) == 1 and "cannot read 'abc'" in problems[0].message

"""The mutation check: the slips it makes, and that it tells weak test cells from strong ones."""

import json

import nbformat
import pytest

from course_lib.dev.mutants import TARGET, exercise_digest, format_report, markdown_tables, score_notebook
from course_lib.dev.mutations import mutants, solution_lines, uses_tensorflow
from course_lib.paths import REPO_ROOT, assignment_ids

ANSWER = '''import numpy as np


def p50(values, scale=1.0):
    """Median of `values` times 2: this docstring's 2 is never mutated."""
    ### BEGIN SOLUTION
    if len(values) < 1:
        raise ValueError(f"no values: got {len(values) + 0}")
    return float(np.median(np.asarray(values, dtype=np.float64))) * scale
    ### END SOLUTION
'''


def test_mutants_change_only_the_solution_region_and_never_messages_or_docstrings():
    found = {m.change for m in mutants(ANSWER)}
    assert found == {"Lt -> LtE", "1 -> 2", ".median -> .mean", "dropped dtype=", "Mult -> Div"}
    region = solution_lines(ANSWER)
    assert all(m.line in region for m in mutants(ANSWER))
    assert all('"""Median of `values` times 2' in m.source for m in mutants(ANSWER))


def test_an_answer_without_solution_markers_has_no_mutants():
    assert mutants("def f(x):\n    return x + 1\n") == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("### BEGIN SOLUTION\ny = tf.transpose(x, [0, 2, 3, 1])\n### END SOLUTION\n", True),
        ("### BEGIN SOLUTION\nn = model.count_params()\n### END SOLUTION\n", True),
        ("### BEGIN SOLUTION\ny = np.transpose(x, (0, 2, 3, 1))\n### END SOLUTION\n", False),
        ("import tensorflow as tf\n### BEGIN SOLUTION\ny = x + 1\n### END SOLUTION\n", False),
    ],
)
def test_tensorflow_use_is_read_from_the_solution_region(source, expected):
    assert uses_tensorflow(source) is expected


def notebook_with(test_source: str) -> nbformat.NotebookNode:
    grader = {"schema_version": 3, "locked": False}
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell(ANSWER)
    answer.metadata["nbgrader"] = {**grader, "grade": False, "solution": True, "grade_id": "ex1-answer"}
    tests = nbformat.v4.new_code_cell(test_source)
    tests.metadata["nbgrader"] = {
        **grader,
        "grade": True,
        "solution": False,
        "locked": True,
        "points": 2,
        "grade_id": "ex1-tests",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny"),
        answer,
        tests,
        nbformat.v4.new_code_cell("after = p50([1, 2, 9])"),
    ]
    return nb


@pytest.mark.slow  # two real kernels
def test_weak_tests_let_mutants_survive_and_strong_ones_catch_them(tmp_path):
    weak, strong = tmp_path / "weak.ipynb", tmp_path / "strong.ipynb"
    nbformat.write(notebook_with("assert isinstance(p50([1.0, 2.0, 9.0]), float)"), weak)
    nbformat.write(
        notebook_with(
            "assert p50([1, 2, 9]) == 2.0\n"
            "assert p50([3], scale=2.0) == 6.0\n"
            "assert isinstance(p50(np.array([1, 2], dtype=np.int64)), float)\n"
            "try:\n    p50([])\n    raise AssertionError('no error for an empty list')\nexcept ValueError:\n    pass\n"
        ),
        strong,
    )
    [weak_score] = score_notebook(weak, timeout=30)
    [strong_score] = score_notebook(strong, timeout=30)
    assert (weak_score.mutants, strong_score.mutants) == (5, 5)
    assert weak_score.killed == 0, weak_score.survivors
    # np.median of ints with or without dtype= gives the same float: that mutant is equivalent and survives.
    assert strong_score.killed == 4 and strong_score.survivors == ["line 9: dropped dtype="]
    assert "4/5 mutants killed (80%)" in format_report("strong", [strong_score])


def test_the_digest_follows_exercise_cells_not_prose():
    nb = notebook_with("assert p50([1, 2, 9]) == 2.0")
    before = exercise_digest(nb)
    nb.cells[0].source = "# Tiny, reworded"
    assert exercise_digest(nb) == before
    nb.cells[2].source += "\nassert p50([5]) == 5.0"
    assert exercise_digest(nb) != before


RECORD = REPO_ROOT / "docs" / "mutation-scores.json"


def test_the_recorded_mutation_scores_are_current_and_meet_the_targets():
    """Issue 16: >= 85% of the mutants killed in every notebook, >= 2/3 of the exercises call TensorFlow."""
    record = json.loads(RECORD.read_text())
    stale = [
        a
        for a in assignment_ids()
        if record.get(a, {}).get("digest")
        != exercise_digest(nbformat.read(REPO_ROOT / "solutions" / a / f"{a}.ipynb", as_version=4))
    ]
    assert not stale, f"exercises changed since `make mutants` recorded them: {stale}; run it and commit the record"
    below = {a: record[a]["score"] for a in assignment_ids() if record[a]["score"] < TARGET}
    assert not below, f"notebooks whose tests catch fewer than {TARGET:.0%} of the mutants: {below}"
    share = sum(record[a]["use_tensorflow"] for a in assignment_ids()) / sum(
        record[a]["exercises"] for a in assignment_ids()
    )
    assert share >= 2 / 3, f"only {share:.0%} of the autograded exercises call TensorFlow"
    benchmarks = (REPO_ROOT / "docs" / "benchmarks.md").read_text()
    assert markdown_tables({a: record[a] for a in assignment_ids()}) in benchmarks, (
        "docs/benchmarks.md: run make mutants"
    )

"""Every course notebook: executed, graded and checked through nbgrader, once per submission kind.

For each assignment, one scratch course directory (outside the repo) is built from solutions/;
the student version generated there must equal the committed notebooks/ (else: `make notebooks`).
Three submissions are autograded in one nbgrader run, which is also each notebook's execution check:
- the solution notebook: full marks;
- the untouched student notebook: zero, and graded without crashing;
- the student notebook with every exercise answered but the last: exactly the points of that exercise lost.
"""

import filecmp

import nbformat
import pytest

from course_lib.dev.grading import CourseDirectory, exercises, fill_answers
from course_lib.paths import REPO_ROOT, assignment_ids

ASSIGNMENTS = assignment_ids()

pytestmark = pytest.mark.slow  # every notebook run through nbgrader


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, tmp_path_factory):
    assignment = request.param
    course = CourseDirectory(tmp_path_factory.mktemp(f"course-{assignment}"), [assignment])
    course.generate()
    solution = nbformat.read(course.source_notebook(assignment), as_version=4)
    student = nbformat.read(course.student_notebook(assignment), as_version=4)
    skipped = exercises(solution)[-1]
    points = {"auto": 0.0, "manual": 0.0}
    for cell in solution.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            points["manual" if meta.get("solution") else "auto"] += float(meta.get("points", 0))
    course.submit("perfect", assignment, course.source_notebook(assignment))
    course.submit("untouched", assignment, course.student_notebook(assignment))
    course.submit("partial", assignment, fill_answers(student, solution, skip={skipped.answer_id}))
    log = course.autograde(assignment)
    return assignment, course, course.results(assignment), skipped, log, points


def test_student_notebook_is_generated_from_the_solution(graded):
    assignment, course, *_ = graded
    committed = REPO_ROOT / "notebooks" / assignment / f"{assignment}.ipynb"
    assert committed.exists(), f"{committed} is missing: run `make notebooks` and commit it"
    assert filecmp.cmp(course.student_notebook(assignment), committed, shallow=False), (
        f"{committed} is stale: run `make notebooks` and commit it"
    )


def test_student_notebook_hides_solutions_and_hidden_tests(graded):
    assignment, course, *_ = graded
    text = course.student_notebook(assignment).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text


def test_notebook_has_at_least_three_autograded_exercises(graded):
    assignment, course, *_ = graded
    found = exercises(nbformat.read(course.source_notebook(assignment), as_version=4))
    assert len([e for e in found if e.points > 0]) >= 3


def cell_errors(course: CourseDirectory, student: str, assignment: str, grade_ids) -> str:
    """What the autograded notebook's cells `grade_ids` raised: the reason a test lost its points
    (nbgrader's log says only that it did)."""
    path = course.root / "autograded" / student / assignment / f"{assignment}.ipynb"
    if not path.exists():
        return f"({path} was not written)"
    lines = [
        f"{cell.metadata['nbgrader']['grade_id']}: {output.get('ename')}: {str(output.get('evalue'))[:500]}"
        for cell in nbformat.read(path, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("grade_id") in grade_ids
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    return "\n".join(lines) or "(no error output in those cells)"


def test_solution_gets_full_marks(graded):
    """Every autograded point; written answers wait for the instructor (and are flagged for it)."""
    assignment, course, results, _, log, points = graded
    perfect = results["perfect"]
    assert perfect.graded, log[-3000:]
    assert perfect.max_score == points["auto"] + points["manual"]
    lost = {name: score for name, score in perfect.test_scores.items() if score is not None and score < 1e-9}
    assert perfect.score == points["auto"], (
        f"tests that failed on the solution: {lost}\n{cell_errors(course, 'perfect', assignment, lost)}\n{log[-3000:]}"
    )
    assert perfect.needs_manual_grade == (points["manual"] > 0)


def test_untouched_student_notebook_gets_zero(graded):
    _, _, results, _, log, _ = graded
    untouched = results["untouched"]
    assert untouched.graded, log[-3000:]
    assert untouched.score == 0


def test_leaving_one_exercise_out_loses_exactly_its_points(graded):
    _, _, results, skipped, log, points = graded
    partial = results["partial"]
    assert partial.graded, log[-3000:]
    expected = points["auto"] - skipped.points
    assert partial.score == expected, (
        f"expected {expected} (all but {skipped.answer_id}), got {partial.score}: {partial.test_scores}"
    )

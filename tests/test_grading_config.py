"""Only errors cost points: what correct TensorFlow code writes to stderr never does (issue 14).

The submissions run for real, through `nbgrader autograde` / `validate` / `generate_feedback` with
the course's nbgrader_config.py and grading kernel. Their answers make TensorFlow write what it
really writes (the first op and the first XLA compile of the process, a Keras warning) and add
logging at every level, warnings of four categories, a tqdm bar and print to stderr
(tests/fixtures/grading/stderr-noise). Each test checks that this output really reached the test
cells, so a quiet TensorFlow cannot make them pass vacuously (under pytest, ipykernel would not capture
TensorFlow's C++ lines without `kernels_capture_fd_output`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import determine_grade

from course_lib.dev.generate import nbgrader
from course_lib.dev.grading import CourseDirectory, fill_answers, kernels_capture_fd_output
from course_lib.dev.scoring import STDERR_HEADER, is_test_cell, set_aside_texts
from course_lib.paths import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
ASSIGNMENT = "stderr-noise"
TESTS = {"xla": "xla-tests", "layer": "layer-tests", "mean": "mean-tests"}
# An absl/C++ log line as TensorFlow 2.21 writes it: severity, MMDD, 00:00:<epoch seconds>, thread, file:line]
ABSL_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] ", re.MULTILINE)

WRONG = {  # same output on stderr as the solution, wrong result
    "xla": "@tf.function(jit_compile=True)\ndef sum_of_squares(x):\n    return tf.reduce_sum(x)",
    "layer": "def make_layer():\n    return keras.layers.Dense(3, input_shape=(3,))",
    "mean": None,  # set below: the solution's noise, returning the total instead of the mean
}
TIMEOUT_S = 30


def submission(course: CourseDirectory, wrong: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The solution as a student hands it in, with the answers in `wrong` replaced."""
    student = nbformat.read(course.student_notebook(ASSIGNMENT), as_version=4)
    notebook = fill_answers(student, nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4))
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if wrong and grade_id in wrong:
            cell.source = wrong[grade_id]
    return notebook


def mean_returning_total(course: CourseDirectory) -> str:
    source = nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4)
    mean = next(c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "mean")
    return re.sub(r"### BEGIN SOLUTION.*### END SOLUTION", "return total", mean, flags=re.DOTALL)


def autograded(course: CourseDirectory, student: str) -> nbformat.NotebookNode:
    return nbformat.read(course.root / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


def cell_named(notebook: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A class of five, autograded and given feedback with the course's config and grading kernel."""
    course = CourseDirectory(tmp_path_factory.mktemp("course-noise"), [ASSIGNMENT], sources=FIXTURES)
    course.generate()
    wrong_mean = {**WRONG, "mean": mean_returning_total(course)}
    course.submit("alice", ASSIGNMENT, submission(course))  # correct, noisy
    course.submit("bob", ASSIGNMENT, submission(course, wrong_mean))  # every answer wrong, as noisy
    course.submit("carol", ASSIGNMENT, submission(course, {"layer": WRONG["layer"]}))  # one wrong
    course.submit(
        "dave",
        ASSIGNMENT,
        submission(course, {"mean": mean_returning_total(course).replace("return total", "while True:\n        pass")}),
    )  # runs past the time limit
    past_the_memory_limit = (
        "import numpy as np\n\ndef make_layer():\n"
        "    np.ones(2**40)  # 8 TiB: past the kernel's memory limit\n"
        "    return keras.layers.Dense(4, input_shape=(3,))"
    )
    course.submit("erin", ASSIGNMENT, submission(course, {"layer": past_the_memory_limit}))
    log = course.autograde(ASSIGNMENT, f"--Execute.timeout={TIMEOUT_S}")
    feedback = nbgrader(["generate_feedback", ASSIGNMENT, "--force"], course.root)
    assert feedback.returncode == 0, feedback.stderr[-3000:]
    return course, course.results(ASSIGNMENT), log


def test_the_test_cells_really_received_tensorflows_stderr(graded):
    """Real TF output reached the test cells of the correct submission: C++ lines in TF's format
    (first op, XLA compile), the Keras warning, and every other kind of stderr output."""
    course, _, log = graded
    notebook = autograded(course, "alice")
    xla = set_aside_texts(cell_named(notebook, "xla-tests"))
    assert ABSL_LINE.search(xla), f"no absl line in the XLA test cell's stderr:\n{xla}\n{log[-3000:]}"
    assert "Compiled cluster using XLA" in xla, xla
    layer = set_aside_texts(cell_named(notebook, "layer-tests"))
    assert "UserWarning: Do not pass an `input_shape`/`input_dim` argument to a layer" in layer, layer
    mean = set_aside_texts(cell_named(notebook, "mean-tests"))
    # (TF's own logger writes to stdout in an interactive kernel; it is called too, and costs nothing.)
    for expected in (
        "WARNING:absl:absl",
        "logging at DEBUG",
        "logging at INFO",
        "logging at CRITICAL",
        "UserWarning: a UserWarning",
        "DeprecationWarning: a DeprecationWarning",
        "FutureWarning: a FutureWarning",
        "RuntimeWarning: a RuntimeWarning",
        "print(..., file=sys.stderr)",
        "summing: 100%",
    ):
        assert expected in mean, f"{expected!r} missing from the stderr of mean-tests:\n{mean}"


def test_nbgrader_alone_would_have_zeroed_the_correct_answer(graded):
    """The same cells with their stderr put back as stderr get 0 from nbgrader's own rule."""
    course, _, _ = graded
    for grade_id in TESTS.values():
        cell = cell_named(autograded(course, "alice"), grade_id)
        cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=set_aside_texts(cell))]
        assert determine_grade(cell) == (0, 1.0), grade_id


def test_a_correct_answer_that_writes_to_stderr_gets_full_marks(graded):
    _, results, log = graded
    assert results["alice"].test_scores == dict.fromkeys(TESTS.values(), 1.0), log[-3000:]


def test_a_wrong_answer_that_writes_the_same_gets_zero(graded):
    _, results, log = graded
    assert results["bob"].test_scores == dict.fromkeys(TESTS.values(), 0.0), log[-3000:]
    assert results["carol"].test_scores == {"xla-tests": 1.0, "layer-tests": 0.0, "mean-tests": 1.0}, log[-3000:]


def test_a_timeout_and_a_memory_error_still_cost_the_points(graded):
    _, results, log = graded
    assert results["dave"].test_scores == {"xla-tests": 1.0, "layer-tests": 1.0, "mean-tests": 0.0}, log[-3000:]
    assert results["erin"].test_scores == {"xla-tests": 1.0, "layer-tests": 0.0, "mean-tests": 1.0}, log[-3000:]


def test_stderr_stays_readable_in_the_graded_notebook_as_a_note(graded):
    course, _, _ = graded
    cell = cell_named(autograded(course, "alice"), "xla-tests")
    notes = [o for o in cell.outputs if o.output_type == "display_data"]
    assert notes and notes[0].data["text/plain"].startswith(STDERR_HEADER)
    assert not [
        o
        for o in autograded(course, "alice").cells
        if is_test_cell(o)
        for out in o.outputs
        if out.output_type == "stream" and out.name == "stderr"
    ]


def feedback_html(course: CourseDirectory, student: str) -> str:
    return (course.root / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()


@pytest.mark.parametrize(
    "student, cause",
    [
        ("bob", "Scored 0 of 1: failed check: AssertionError"),
        ("dave", "Scored 0 of 1: timeout: the cell ran past the grading time limit"),
        ("erin", "Scored 0 of 1: killed for memory: MemoryError"),
    ],
)
def test_feedback_names_why_a_test_cell_scored_zero(graded, student, cause):
    course, _, _ = graded
    assert cause in feedback_html(course, student)


def test_feedback_of_full_marks_names_no_cause(graded):
    course, _, _ = graded
    assert "Scored " not in feedback_html(course, "alice")
    assert feedback_html(course, "carol").count("Scored 0 of 1:") == 1


def validate(course: CourseDirectory, notebook: nbformat.NotebookNode, name: str) -> str:
    path = course.root / "validate" / name / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    with kernels_capture_fd_output():
        return nbgrader(["validate", str(path)], course.root).stdout


def test_validate_passes_a_correct_answer_whatever_it_writes_to_stderr(graded):
    course, _, _ = graded
    output = validate(course, submission(course), "alice")
    assert "Success! Your notebook passes all the tests." in output, output[-3000:]


def test_validate_still_fails_a_wrong_answer(graded):
    course, _, _ = graded
    output = validate(course, submission(course, {"layer": WRONG["layer"]}), "carol")
    assert "VALIDATION FAILED ON 1 CELL(S)" in output, output[-3000:]
    assert "AssertionError" in output and "UserWarning" not in output, output[-3000:]


def test_the_validate_button_grades_like_validate(graded, monkeypatch):
    """The lab extension's handler: nbgrader config from the server's folder, Validator in-process."""
    from jupyter_core.paths import jupyter_config_path
    from nbgrader.apps import NbGrader
    from nbgrader.validator import Validator

    course, _, _ = graded
    path = course.root / "validate" / "button" / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(submission(course), path)
    monkeypatch.chdir(REPO_ROOT)
    paths = jupyter_config_path()
    paths.insert(0, os.getcwd())
    app = NbGrader()
    # As nbgrader's validate handler does it, list and all (server_extensions/validate_assignment/handlers.py).
    app.config_file_paths.append(paths)  # pyright: ignore[reportArgumentType]
    app.load_config_file()
    with kernels_capture_fd_output():
        result = Validator(config=app.config).validate(str(path))
    assert result == {}, result


def test_progress_counts_only_errors(graded):
    """`make progress` (course_lib.progress) runs the student's own kernel and scores visible tests."""
    from course_lib.progress import check_notebook

    course, _, _ = graded
    path = course.root / "progress" / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(submission(course, {"layer": WRONG["layer"]}), path)
    with kernels_capture_fd_output():
        results = {r.exercise: r.earned for r in check_notebook(path)}
    assert results == {"xla-tests": 1.0, "layer-tests": 0.0, "mean-tests": 1.0}


def graded_cell(*outputs, execution_count=1) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("assert answer() == 2", execution_count=execution_count)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1, "locked": True}
    cell.outputs = list(outputs)
    return cell


def error(ename: str, evalue: str = "") -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])


@pytest.mark.parametrize(
    "outputs, execution_count, reason",
    [
        (
            [error("AssertionError", "a reshape is not a transpose")],
            1,
            "failed check: AssertionError: a reshape is not a transpose",
        ),
        (
            [error("NameError", "name 'answer' is not defined\nmore")],
            1,
            "exception: NameError: name 'answer' is not defined",
        ),
        ([error("KeyboardInterrupt"), error("CellTimeoutError")], 1, "timeout: "),
        (
            [error("ResourceExhaustedError", "OOM when allocating tensor")],
            1,
            "killed for memory: ResourceExhaustedError",
        ),
        (
            [nbformat.v4.new_output("execute_result", data={"text/plain": "0.5"}, execution_count=1)],
            1,
            "partial credit",
        ),
        ([], None, "not run: "),
    ],
)
def test_each_way_to_lose_points_has_its_one_line_reason(outputs, execution_count, reason):
    from course_lib.dev.scoring import lost_points_reason

    assert lost_points_reason(graded_cell(*outputs, execution_count=execution_count)).startswith(reason)


def test_only_test_cells_lose_their_stderr_and_other_outputs_keep_their_order():
    from course_lib.dev.scoring import set_aside_stderr

    answer = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"solution": True, "grade": False}})
    answer.outputs = [nbformat.v4.new_output("stream", name="stderr", text="warning\n")]
    test = graded_cell(
        nbformat.v4.new_output("stream", name="stdout", text="out\n"),
        nbformat.v4.new_output("stream", name="stderr", text="E0000 first\n"),
        error("AssertionError"),
        nbformat.v4.new_output("stream", name="stderr", text="  0%|\r100%|\n"),
    )
    notebook = set_aside_stderr(nbformat.v4.new_notebook(cells=[answer, test]))
    assert answer.outputs[0].name == "stderr"
    assert [o.output_type for o in test.outputs] == ["stream", "display_data", "error"]
    assert set_aside_texts(notebook.cells[1]) == "E0000 first\n100%|"
    assert determine_grade(test) == (0, 1.0)  # the error still costs the point

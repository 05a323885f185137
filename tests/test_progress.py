"""`python -m course_lib progress`: visible-test points per exercise, the first failing message, the hints asked."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.dev.grading import CourseDirectory, fill_answers
from course_lib.hints import Hints
from course_lib.progress import check_notebook

FIXTURES = Path(__file__).parent / "fixtures" / "classroom"
ASSIGNMENT = "tiny-assignment"


pytestmark = pytest.mark.slow  # nbgrader releases the assignment, the command runs its tests


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    course = CourseDirectory(tmp_path_factory.mktemp("progress"), [ASSIGNMENT], sources=FIXTURES / "source")
    course.generate()
    student = nbformat.read(course.student_notebook(ASSIGNMENT), as_version=4)
    solution = nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4)
    return course, student, solution


def test_an_untouched_notebook_is_reported_as_not_started_without_running_it(released, tmp_path):
    course, *_ = released
    (result,) = check_notebook(course.student_notebook(ASSIGNMENT))
    assert (result.exercise, result.earned, result.possible, result.message) == ("(all)", 0, 6, "not started")


def test_points_and_first_failing_message_per_exercise(released, tmp_path):
    _, student, solution = released
    work = fill_answers(student, solution, skip={"ex2-answer"})
    wrong = next(c for c in work.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex3-answer")
    wrong.source = "def mean_latency_ms(seconds):\n    return sum(seconds) / len(seconds)"
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(work, path)
    hints = Hints(ASSIGNMENT, {"ex1": ["idea", "API", "example"], "ex3": ["idea", "API"]}, folder=tmp_path)
    for exercise in ("ex1", "ex1", "ex3"):
        hints.hint(exercise)  # what a student's `hints.hint(...)` calls record beside the notebook
    before = path.read_bytes()
    results = {r.exercise: r for r in check_notebook(path)}
    assert path.read_bytes() == before, "progress must never change the student's file"
    assert (results["ex1-tests"].earned, results["ex1-tests"].message) == (1, "")
    assert results["ex2-tests"].earned == 0 and results["ex2-tests"].message.startswith("NotImplementedError")
    assert results["ex3-tests"].earned == 0
    assert results["ex3-tests"].message.startswith("AssertionError: mean_latency_ms([0.001, 0.003]): expected 2.0")
    assert {ex: r.hints for ex, r in results.items()} == {"ex1-tests": "1, 2", "ex2-tests": "", "ex3-tests": "1"}


def test_a_notebook_not_started_still_shows_the_hints_asked(released, tmp_path):
    course, *_ = released
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    shutil.copy(course.student_notebook(ASSIGNMENT), path)
    (tmp_path / f".hints-{ASSIGNMENT}.json").write_text(json.dumps({"asked": {"ex2": [1], "ex1": [1, 2, 3]}}))
    (result,) = check_notebook(path)
    assert (result.message, result.hints) == ("not started", "ex1: 1, 2, 3; ex2: 1")


def test_the_command_prints_a_table_and_survives_a_broken_file(released, tmp_path):
    course, *_ = released
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    untouched = tmp_path / "untouched" / f"{ASSIGNMENT}.ipynb"
    untouched.parent.mkdir()
    shutil.copy(course.student_notebook(ASSIGNMENT), untouched)
    (untouched.parent / f".hints-{ASSIGNMENT}.json").write_text(json.dumps({"asked": {"ex3": [1, 2]}}))
    result = subprocess.run(
        [sys.executable, "-m", "course_lib", "progress", str(untouched), str(broken)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"| {ASSIGNMENT} | (all) | 0 / 6 | not started | ex3: 1, 2 |" in result.stdout
    assert "| broken | (notebook) | 0 / 0 | could not run" in result.stdout and "| hints asked |" in result.stdout
    assert "Visible tests passed: 0 of 6 points" in result.stdout


def test_show_in_the_notebook_reads_the_saved_outputs_without_running_anything(released, tmp_path, monkeypatch, capsys):
    from nbclient import NotebookClient

    from course_lib.progress import current_notebook, saved_results, show

    _, student, solution = released
    folder = tmp_path / ASSIGNMENT
    folder.mkdir()
    nbformat.write(fill_answers(student, solution, skip={"ex2-answer"}), folder / f"{ASSIGNMENT}.ipynb")
    work = nbformat.read(folder / f"{ASSIGNMENT}.ipynb", as_version=4)
    NotebookClient(
        work, kernel_name="tf-course", allow_errors=True, resources={"metadata": {"path": str(folder)}}
    ).execute()
    last_test = max(
        i for i, c in enumerate(work.cells) if c.metadata.get("nbgrader", {}).get("grade_id", "").endswith("-tests")
    )
    work.cells[last_test].execution_count = None  # the student never ran the last test cell
    work.cells[last_test].outputs = []
    nbformat.write(work, folder / f"{ASSIGNMENT}.ipynb")
    Hints(ASSIGNMENT, {"ex2": ["idea", "API"]}, folder=folder).hint("ex2")
    capsys.readouterr()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    show()
    assert "| tiny-assignment | ex2-tests | 0 / " in capsys.readouterr().out
    results = {r.exercise: r for r in saved_results(folder / f"{ASSIGNMENT}.ipynb")}
    assert results["ex1-tests"].earned == results["ex1-tests"].possible > 0
    assert results["ex2-tests"].earned == 0 and results["ex2-tests"].message.startswith("NotImplementedError")
    assert results["ex2-tests"].hints == "1"
    last = work.cells[last_test].metadata["nbgrader"]["grade_id"]
    assert results[last].earned == 0 and results[last].message.startswith("not run yet")
    # Jupyter Server names the notebook of a kernel in JPY_SESSION_NAME: a renamed copy is found by it.
    (folder / "renamed.ipynb").write_bytes((folder / f"{ASSIGNMENT}.ipynb").read_bytes())
    (folder / f"{ASSIGNMENT}.ipynb").unlink()
    monkeypatch.setenv("JPY_SESSION_NAME", str(folder / "renamed.ipynb"))
    assert current_notebook() == folder / "renamed.ipynb"
    show()
    assert "| renamed | ex2-tests | 0 / " in capsys.readouterr().out


def test_show_without_a_saved_notebook_says_what_to_pass(tmp_path, monkeypatch, capsys):
    from course_lib.progress import show

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    show()
    assert "no saved notebook found" in capsys.readouterr().out

"""Grade submissions with nbgrader in a course directory, and read the scores back.

The test suite and the instructor workflow both use this: a course directory whose source/ is a
copy of the repository's solutions/, generated student versions, submissions placed under
submitted/<student>/<assignment>/, `nbgrader autograde`, and scores read from the gradebook
(never from nbgrader's exit code, which is 1 as soon as one submission failed).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.utils import is_grade, is_solution

from course_lib.dev.generate import nbgrader
from course_lib.paths import REPO_ROOT, SOLUTIONS, STUDENT_NOTEBOOKS


@contextmanager
def kernels_capture_fd_output():
    """Run nbgrader's kernels as on a real grader, also inside the test suite.

    ipykernel stops capturing file descriptor 2 (TensorFlow's C++ log lines) in a kernel started
    with PYTEST_CURRENT_TEST set, and nbgrader's kernels inherit it from a test: the grades would
    then never meet the output a real grading run puts in test cells.
    """
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved


@dataclass
class GradeResult:
    """One student's result on one notebook, as the gradebook records it."""

    student: str
    score: float | None
    max_score: float
    test_scores: dict[str, float] = field(default_factory=dict)
    needs_manual_grade: bool = False
    graded: bool = True
    reason: str = ""


@dataclass
class Exercise:
    """An answer cell and the test cells that grade it."""

    answer_id: str
    test_ids: list[str]
    points: float


def exercises(notebook: nbformat.NotebookNode) -> list[Exercise]:
    """Answer cells with the autograded test cells that follow them (until the next answer cell)."""
    found: list[Exercise] = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if is_solution(cell) and not is_grade(cell) and cell.cell_type == "code":
            found.append(Exercise(meta["grade_id"], [], 0.0))
        elif is_grade(cell) and not is_solution(cell) and found:
            found[-1].test_ids.append(meta["grade_id"])
            found[-1].points += float(meta.get("points", 0))
    return found


def fill_answers(
    student: nbformat.NotebookNode, solution: nbformat.NotebookNode, skip: Collection[str] = frozenset()
) -> nbformat.NotebookNode:
    """A student notebook with the solution's answers pasted in, except the answer cells in `skip`.

    This is how a student who solved every exercise but some would hand it in: the partial
    submissions of the tests are built from it, so their expected score is known exactly.
    """
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells if is_solution(c)}
    filled = nbformat.from_dict(json.loads(nbformat.writes(student)))
    if not isinstance(filled, nbformat.NotebookNode):  # from_dict turns a dict into a NotebookNode
        raise TypeError(f"expected a notebook, got {type(filled).__name__}")
    for cell in filled.cells:
        if is_solution(cell) and cell.metadata["nbgrader"]["grade_id"] not in skip:
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
    return filled


class CourseDirectory:
    """An nbgrader course directory outside the repository, built from its solutions/."""

    def __init__(self, root: Path, assignments: list[str], sources: Path = REPO_ROOT / SOLUTIONS):
        self.root = Path(root)
        self.assignments = assignments
        self.root.mkdir(parents=True, exist_ok=True)
        for assignment in assignments:
            target = self.root / SOLUTIONS / assignment
            if not target.exists():
                shutil.copytree(
                    sources / assignment, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
                )

    def run(self, *args: str) -> None:
        result = nbgrader(list(args), self.root)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stderr[-4000:]}")

    def generate(self) -> None:
        """Generate the student versions (and register the assignments in the gradebook).

        One nbgrader process for all of them: the course directory holds only `self.assignments`.
        """
        self.run("generate_assignment", "*", "--force", "--create")

    def source_notebook(self, assignment: str) -> Path:
        return self.root / SOLUTIONS / assignment / f"{assignment}.ipynb"

    def student_notebook(self, assignment: str) -> Path:
        return self.root / STUDENT_NOTEBOOKS / assignment / f"{assignment}.ipynb"

    def submit(self, student: str, assignment: str, notebook: nbformat.NotebookNode | Path) -> Path:
        """Place a submission as `nbgrader collect` would."""
        folder = self.root / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{assignment}.ipynb"
        if isinstance(notebook, Path):
            shutil.copy(notebook, target)
        else:
            nbformat.write(notebook, target)
        return target

    def autograde(self, assignment: str, *options: str) -> str:
        """Autograde every submission of `assignment`; returns nbgrader's log (it may exit 1).

        `options` are more nbgrader arguments, e.g. `--Execute.timeout=30`.
        """
        with kernels_capture_fd_output():
            result = nbgrader(["autograde", assignment, "--force", *options], self.root)
        return result.stderr

    def submitted_students(self, assignment: str) -> list[str]:
        """Students with a submission of `assignment` under submitted/, sorted."""
        submitted = self.root / "submitted"
        if not submitted.exists():
            return []
        return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())

    def results(self, assignment: str) -> dict[str, GradeResult]:
        """Scores per student from the gradebook; submissions nbgrader could not grade are marked."""
        from nbgrader.api import Gradebook, MissingEntry

        results: dict[str, GradeResult] = {}
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gradebook:
            for student in self.submitted_students(assignment):
                try:
                    notebook = gradebook.find_submission_notebook(assignment, assignment, student)
                except MissingEntry:
                    results[student] = GradeResult(
                        student, None, 0.0, graded=False, reason="not graded: see the autograde log"
                    )
                    continue
                results[student] = GradeResult(
                    student=student,
                    score=notebook.score,
                    # nbgrader declares these `= None` on the class and maps them to SQL afterwards
                    max_score=notebook.max_score,  # pyright: ignore[reportArgumentType]
                    test_scores={grade.name: grade.score for grade in notebook.grades},
                    needs_manual_grade=notebook.needs_manual_grade,  # pyright: ignore[reportArgumentType]
                )
        return results

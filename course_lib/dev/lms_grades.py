"""Grades for an LMS gradebook: one row per student, one column per assignment (points), a total.

`make grades` writes two files beside nbgrader's own export (one row per student and assignment):

`grades-canvas.csv`, the layout of Canvas's gradebook import (Grades > Import), as canvas-lms's
GradebookImporter (app/models/gradebook_importer.rb) reads it:

    Student,ID,SIS User ID,SIS Login ID,Section,<assignment>,...,Final Points
    Points Possible,,,,,6,...,6
    "Lovelace, Ada",,,ada,,6,...,6

- the header must start with a column containing "Student" and one containing "ID"; a "SIS User
  ID" column must be followed by "SIS Login ID"; the last student column must be "Section";
- the row whose first cell is "Points Possible" gives each assignment's maximum (used for the
  assignments an import creates);
- a student is matched by ID (the Canvas user id), then SIS User ID, then SIS Login ID, then by
  name ("Last, First" or the full name); the nbgrader student id goes in the column `canvas_id`
  names (SIS Login ID unless told otherwise), the others stay empty;
- an assignment column is matched to a Canvas assignment titled exactly like it (or "Title (id)"
  with the Canvas assignment id), any other title becomes a new assignment on import;
- "Final Points", the last column, is one of the totals Canvas leaves out of an import (it
  computes its own), so the total is there to read, never imported.

`grades-moodle.csv`, for Moodle's CSV grade import (Grades > Import > CSV file):

    Username,Email address,First name,Last name,<assignment>,...,Total

Moodle identifies users by the column the instructor picks ("Map from") and a user field ("Map to":
username, ID number, email address or user id); each other column is mapped to a grade item, a new
grade item, or ignored ("Total": Moodle computes the course total itself).

In both, a score is nbgrader's (autograded plus manual points, less the late penalty, never below 0:
the `score` of `nbgrader export`), an assignment without a submission from the student is left
empty (no grade, not 0), and the total adds up the scores present. Only assignments with at
least one submission get a column.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_lib.workspace import write_bytes_atomically

CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_ID_COLUMNS = ("SIS Login ID", "SIS User ID", "ID")
CANVAS_ID_OPTIONS = {"sis-login-id": "SIS Login ID", "sis-user-id": "SIS User ID", "id": "ID"}  # --canvas-id
CANVAS_TOTAL = "Final Points"
CANVAS_POINTS_ROW = "Points Possible"
MOODLE_STUDENT_COLUMNS = ["Username", "Email address", "First name", "Last name"]
MOODLE_TOTAL = "Total"


@dataclass
class StudentGrades:
    student: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # assignment -> points, only those submitted

    @property
    def total(self) -> float:
        return sum(self.scores.values())

    @property
    def display_name(self) -> str:
        if self.last_name and self.first_name:
            return f"{self.last_name}, {self.first_name}"
        return " ".join(part for part in (self.first_name, self.last_name) if part) or self.student


@dataclass
class ClassGrades:
    assignments: dict[str, float]  # assignment -> points possible, in the gradebook's order
    students: list[StudentGrades]


def read_gradebook(database: Path) -> ClassGrades:
    """Every student's score per assignment, as `nbgrader export` computes it."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{database}") as opened:
        gradebook: Any = opened  # nbgrader's models declare their columns as Column[...], not values
        submitted = {a.name: a.max_score for a in gradebook.assignments if a.num_submissions > 0}
        students = []
        for student in sorted(gradebook.students, key=lambda s: s.id):
            grades = StudentGrades(student.id, student.first_name or "", student.last_name or "", student.email or "")
            for assignment in submitted:
                try:
                    submission = gradebook.find_submission(assignment, student.id)
                except MissingEntry:
                    continue
                grades.scores[assignment] = max(0.0, submission.score - submission.late_submission_penalty)
            students.append(grades)
    return ClassGrades(dict(sorted(submitted.items())), students)


def points(value: float | None) -> str:
    """A number of points as an LMS reads it: up to two decimals, no trailing zeros ('' for none)."""
    if value is None:
        return ""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def canvas_rows(grades: ClassGrades, canvas_id: str = "SIS Login ID") -> list[list[str]]:
    if canvas_id not in CANVAS_ID_COLUMNS:
        raise ValueError(f"canvas_id must be one of {CANVAS_ID_COLUMNS}, got {canvas_id!r}")
    assignments = list(grades.assignments)
    header = [*CANVAS_STUDENT_COLUMNS, *assignments, CANVAS_TOTAL]
    possible = [CANVAS_POINTS_ROW, "", "", "", ""]
    rows = [header, [*possible, *(points(grades.assignments[a]) for a in assignments), points(_max_total(grades))]]
    for student in grades.students:
        identity = {"Student": student.display_name, canvas_id: student.student}
        rows.append(
            [
                *(identity.get(column, "") for column in CANVAS_STUDENT_COLUMNS),
                *(points(student.scores.get(a)) for a in assignments),
                points(student.total),
            ]
        )
    return rows


def moodle_rows(grades: ClassGrades) -> list[list[str]]:
    assignments = list(grades.assignments)
    header = [*MOODLE_STUDENT_COLUMNS, *assignments, MOODLE_TOTAL]
    return [
        header,
        *(
            [
                student.student,
                student.email,
                student.first_name,
                student.last_name,
                *(points(student.scores.get(a)) for a in assignments),
                points(student.total),
            ]
            for student in grades.students
        ),
    ]


def _max_total(grades: ClassGrades) -> float:
    return sum(grades.assignments.values())


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    """UTF-8 without a byte-order mark, comma-separated, quoted where needed, CRLF line ends (RFC 4180)."""
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    write_bytes_atomically(path, text.getvalue().encode("utf-8"))
    return path


def export(database: Path, folder: Path, canvas_id: str = "SIS Login ID") -> tuple[Path, Path]:
    """grades-canvas.csv and grades-moodle.csv in `folder`, from the gradebook."""
    grades = read_gradebook(database)
    return (
        write_csv(folder / "grades-canvas.csv", canvas_rows(grades, canvas_id)),
        write_csv(folder / "grades-moodle.csv", moodle_rows(grades)),
    )

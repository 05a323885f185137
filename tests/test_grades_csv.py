"""`make grades` for an LMS (issue 19, item 5): grades-canvas.csv and grades-moodle.csv from a real gradebook.

No Canvas or Moodle is reachable from here, so the files are checked against what their importers
read (canvas-lms app/models/gradebook_importer.rb: the header rule, the "Points Possible" row, the
totals it drops; Moodle grade/import/csv: one identifier column mapped to a user field) and every
value against nbgrader's gradebook and its own export.
"""

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from course_lib.dev import lms_grades

FIXTURES = Path(__file__).parent / "fixtures" / "classroom"
SUBMISSIONS = FIXTURES / "submissions"
FIRST, SECOND = "tiny-assignment", "tiny-assignment-2"
# student: {assignment: submission fixture}; a student without an assignment has no submission
SUBMITTED = {
    "ada": {FIRST: "perfect", SECOND: "partial"},
    "bob": {FIRST: "partial"},
    "cy": {SECOND: "untouched"},
}
EXPECTED = {"ada": {FIRST: 6.0, SECOND: 3.0}, "bob": {FIRST: 3.0}, "cy": {SECOND: 0.0}}


def canvas_accepts_header(row: list[str]) -> bool:
    """GradebookImporter#header? of canvas-lms, transcribed: Student, ID, [SIS User ID, SIS Login ID], Section."""
    if not (len(row) > 3 and re.search("Student", row[0]) and re.search("ID", row[1])):
        return False
    student_columns = 3
    if re.search(r"SIS\s+Login\s+ID", row[2]):
        student_columns += 1
    elif re.search(r"SIS\s+User\s+ID", row[2]) and re.search(r"SIS\s+Login\s+ID", row[3]):
        student_columns += 2
        if re.search(r"Root\s+Account", row[4]):
            student_columns += 1
    return bool(re.search("Section", row[student_columns - 1]))


def canvas_assignment_columns(row: list[str]) -> list[str]:
    """The columns Canvas imports as assignments: after the student columns, less trailing totals."""
    columns = row[5:]
    while columns and re.search(
        "Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade", columns[-1]
    ):
        columns.pop()
    return columns


def read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("lms")
    sources = scratch / "sources"
    shutil.copytree(FIXTURES / "source" / FIRST, sources / FIRST)
    (sources / SECOND).mkdir()
    shutil.copy(sources / FIRST / f"{FIRST}.ipynb", sources / SECOND / f"{SECOND}.ipynb")
    root = scratch / "course"
    cli = [sys.executable, "-m", "course_lib.dev.classroom", "--course", str(root), "--sources", str(sources)]

    def run(*args):
        result = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    run("setup")
    run("generate")
    for assignment in (FIRST, SECOND):
        folder = scratch / f"submissions-{assignment}"
        for student, fixtures in SUBMITTED.items():
            if assignment in fixtures:
                (folder / student).mkdir(parents=True)
                shutil.copy(
                    SUBMISSIONS / fixtures[assignment] / f"{FIRST}.ipynb", folder / student / f"{assignment}.ipynb"
                )
        run("grade", assignment, "--from", str(folder))
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as opened:  # a roster with a comma in a name
        gradebook: Any = opened  # nbgrader annotates **kwargs as dict
        gradebook.update_or_create_student("ada", first_name="Ada", last_name="Lovelace, Countess", email="ada@x.org")
    out = scratch / "export" / "grades.csv"
    out.parent.mkdir()
    stdout = run("grades", "--out", str(out)).stdout
    return {"root": root, "folder": out.parent, "stdout": stdout}


@pytest.mark.slow  # nbgrader grades six submissions
def test_the_canvas_file_has_the_layout_canvas_imports(exported):
    rows = read(exported["folder"] / "grades-canvas.csv")
    header, possible, *students = rows
    assert canvas_accepts_header(header)
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas_assignment_columns(header) == [FIRST, SECOND]  # one per assignment; the total is not imported
    assert header[-1] == "Final Points"
    assert possible == ["Points Possible", "", "", "", "", "6", "6", "12"]
    assert all(len(row) == len(header) for row in rows)
    by_login = {row[3]: row for row in students}
    assert by_login["ada"][:5] == ["Lovelace, Countess, Ada", "", "", "ada", ""]
    assert by_login["bob"][5:] == ["3", "", "3"]  # no submission: empty, not 0
    assert by_login["cy"][5:] == ["", "0", "0"]
    assert "grades-canvas.csv" in exported["stdout"] and "grades-moodle.csv" in exported["stdout"]


@pytest.mark.slow  # nbgrader grades six submissions
def test_the_moodle_file_has_one_identifier_column_and_a_column_per_assignment(exported):
    header, *students = read(exported["folder"] / "grades-moodle.csv")
    assert header == ["Username", "Email address", "First name", "Last name", FIRST, SECOND, "Total"]
    usernames = [row[0] for row in students]
    assert usernames == sorted(SUBMITTED) and len(set(usernames)) == len(usernames)  # a unique user key per row
    ada = next(row for row in students if row[0] == "ada")
    assert ada[1:4] == ["ada@x.org", "Ada", "Lovelace, Countess"]
    for row in students:  # every grade cell is a number or empty, as Moodle's import takes them
        assert all(re.fullmatch(r"(\d+(\.\d{1,2})?)?", cell) for cell in row[4:]), row


@pytest.mark.slow  # nbgrader grades six submissions
def test_every_value_matches_the_gradebook_and_nbgraders_export(exported):
    grades = lms_grades.read_gradebook(exported["root"] / "gradebook.db")
    assert {s.student: s.scores for s in grades.students} == EXPECTED
    assert grades.assignments == {FIRST: 6.0, SECOND: 6.0}
    # nbgrader's export does not quote names ("Lovelace, Countess" shifts the columns after it), so its
    # score is read from the end: ..., raw_score, late_submission_penalty, score, max_score.
    nbgrader_export = {(row[3], row[0]): float(row[-2]) for row in read(exported["folder"] / "grades.csv")[1:]}
    for header, *students in [read(exported["folder"] / "grades-moodle.csv")]:
        for row in students:
            values = dict(zip(header, row, strict=True))
            for assignment in (FIRST, SECOND):
                if values[assignment]:
                    assert float(values[assignment]) == nbgrader_export[(values["Username"], assignment)]
            assert float(values["Total"]) == sum(EXPECTED[values["Username"]].values())


def test_points_are_written_as_lms_read_them():
    assert [lms_grades.points(v) for v in (6.0, 2.5, 1 / 3, 0.0, None)] == ["6", "2.5", "0.33", "0", ""]


def test_the_nbgrader_id_goes_in_the_canvas_column_asked_for():
    grades = lms_grades.ClassGrades({"a1": 2.0}, [lms_grades.StudentGrades("s1", scores={"a1": 2.0})])
    for option, column in lms_grades.CANVAS_ID_OPTIONS.items():
        header, _, row = lms_grades.canvas_rows(grades, column)
        assert canvas_accepts_header(header)
        assert dict(zip(header, row, strict=True))[column] == "s1", option
    with pytest.raises(ValueError, match="canvas_id"):
        lms_grades.canvas_rows(grades, "Email")

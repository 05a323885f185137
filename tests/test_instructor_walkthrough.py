"""docs/instructor.md, command by command, on the small fixture assignment.

One course directory goes through setup, release, the exchange (release, fetch, submit, collect),
an LMS zip, grading, formgrader, feedback and the CSV export, exactly as the document shows.
"""

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests
from servers import free_port, wait_for_http

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "classroom"
ASSIGNMENT = "tiny-assignment"
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "COURSE_GRADING_CELL_TIMEOUT": "20",
}

pytestmark = pytest.mark.slow  # nbgrader and `make` on a whole course directory


def make(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        check=False,
        **kwargs,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def nbgrader(*args, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["nbgrader", *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("walkthrough")
    return {
        "dir": root / "tf-course-grading",
        "student": root / "alice-home",
        "scratch": root,
        "vars": [f"COURSE_DIR={root / 'tf-course-grading'}", f"SOURCES={FIXTURES / 'source'}"],
    }


def test_1_setup_and_2_generate(course):
    make("course", *course["vars"])
    assert (course["dir"] / "nbgrader_config.py").exists()
    make("generate", *course["vars"])
    released = (course["dir"] / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    assert "NotImplementedError" in released and "BEGIN HIDDEN TESTS" not in released


def test_2_exchange_round_trip_and_3_collect(course):
    nbgrader("release_assignment", ASSIGNMENT, cwd=course["dir"])
    student_home = course["student"]
    student_home.mkdir()
    exchange = [f"--Exchange.root={course['dir'] / 'exchange'}", "--course=tf-basics"]
    nbgrader("fetch_assignment", ASSIGNMENT, *exchange, cwd=student_home)
    fetched = student_home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert fetched.exists()
    fetched.write_text((FIXTURES / "submissions" / "partial" / f"{ASSIGNMENT}.ipynb").read_text())
    nbgrader("submit", ASSIGNMENT, *exchange, "--student=alice", cwd=student_home)
    nbgrader("collect", ASSIGNMENT, cwd=course["dir"])
    assert (course["dir"] / "submitted" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()


def test_4_grade_with_an_lms_zip(course):
    archive = course["scratch"] / "lms.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(FIXTURES / "submissions" / "perfect" / f"{ASSIGNMENT}.ipynb", f"bob_{ASSIGNMENT}.ipynb")
    result = make("grade", *course["vars"], f"ASSIGNMENT={ASSIGNMENT}", f"SUBMISSIONS={archive}", "GRADING_WORKERS=2")
    assert "| alice | graded | 3 / 6 |" in result.stdout
    assert "| bob | graded | 6 / 6 |" in result.stdout


def test_5_formgrader_serves_the_course(course, start_server):
    port, headers = free_port(), {"Authorization": "token walkthrough"}
    formgrader = start_server(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            "formgrader",
            *course["vars"],
            f"PORT={port}",
            "TOKEN=walkthrough",
        ],
        env=ENV,
        name="make formgrader",
    )
    response = wait_for_http(
        f"http://127.0.0.1:{port}/formgrader/api/assignments", timeout=120, server=formgrader, headers=headers
    )
    assert response.status_code == 200
    assert ASSIGNMENT in {a["name"] for a in response.json()}
    assert requests.get(f"http://127.0.0.1:{port}/formgrader", headers=headers, timeout=5).status_code == 200
    without_token = requests.get(
        f"http://127.0.0.1:{port}/formgrader/api/assignments", timeout=5, allow_redirects=False
    )
    assert without_token.status_code in (302, 403)


def test_6_feedback_without_hidden_tests(course):
    make("feedback", *course["vars"], f"ASSIGNMENT={ASSIGNMENT}")
    page = (course["dir"] / "feedback" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in page and "hidden tests ran here" in page
    nbgrader("release_feedback", ASSIGNMENT, "--student=alice", cwd=course["dir"])
    exchange = [f"--Exchange.root={course['dir'] / 'exchange'}", "--course=tf-basics"]
    nbgrader("fetch_feedback", ASSIGNMENT, *exchange, "--student=alice", cwd=course["student"])
    fetched = list((course["student"] / ASSIGNMENT / "feedback").glob("*/*.html"))
    assert fetched and "BEGIN HIDDEN TESTS" not in fetched[0].read_text()


def test_7_grades_to_csv(course):
    out = course["scratch"] / "grades.csv"
    make("grades", *course["vars"], f"OUT={out}")
    rows = [line.split(",") for line in out.read_text().splitlines()]
    header = rows[0]
    scores = {row[header.index("student_id")]: float(row[header.index("score")]) for row in rows[1:]}
    assert scores == {"alice": 3.0, "bob": 6.0}
    canvas = list(csv.reader((out.parent / "grades-canvas.csv").open()))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0] == "Points Possible"
    moodle = list(csv.DictReader((out.parent / "grades-moodle.csv").open()))
    assert {row["Username"]: float(row[ASSIGNMENT]) for row in moodle} == {"alice": 3.0, "bob": 6.0}


def test_students_progress(course):
    fetched = course["student"] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    result = make("progress", f"NOTEBOOKS={fetched}")
    assert "| tiny-assignment | ex1-tests | 1 / 1 |" in result.stdout
    assert "Visible tests passed: 3 of 6 points" in result.stdout

"""docs/instructor.md, command by command, on the small fixture assignment.

One course directory goes through setup, release, the exchange (release, fetch, submit, collect),
an LMS zip, grading, formgrader, feedback and the CSV export, exactly as the document shows.
"""

import csv
import os
import pwd
import shutil
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


# ----- "Running a class": the same commands on the small assignment, with a real hub ------------------

HUB_TEACHER, HUB_STUDENT, HUB_GRADER = "tfc-wt-ada", "tfc-wt-alan", "tfc-wt-grader"


def hub_cli(hub, *args: str, user: str | None = None) -> subprocess.CompletedProcess:
    """`.venv/bin/python -m course_lib.hub ...` as in the guide (with this test's state folder)."""
    command = [sys.executable, "-m", "course_lib.hub", "--roster", str(hub["roster"])]
    command += ["--state", str(hub["settings"].state), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=hub["env"], timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def as_student(hub, *command: str) -> subprocess.CompletedProcess:
    """A command in the student's JupyterLab terminal: their account, their home, the hub's config path."""
    home = Path(pwd.getpwnam(HUB_STUDENT).pw_dir)
    env = [f"HOME={home}", f"PATH={Path(sys.executable).parent}:/usr/bin:/bin"]
    env.append(f"JUPYTER_CONFIG_PATH={hub['settings'].student_config}")
    result = subprocess.run(
        ["runuser", "-u", HUB_STUDENT, "--", "env", *env, *command],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def class_hub(tmp_path_factory):
    from hub_support import hub_skip_reason, hub_work_folder

    from course_lib.hub.launch import tear_down
    from course_lib.hub.settings import HubSettings

    reason = hub_skip_reason()
    if reason:
        pytest.skip(reason)
    work = hub_work_folder("tfc-hub-walkthrough-")
    roster = work / "roster.csv"
    roster.write_text(f"username,role\n{HUB_TEACHER},instructor\n{HUB_STUDENT},student\n")
    (work / "passwords.txt").write_text(f"{HUB_TEACHER}:walk-{os.getpid()}\n{HUB_STUDENT}:through-{os.getpid()}\n")
    settings = HubSettings.on_free_ports(roster, work / "state", HUB_GRADER)
    hub = {"settings": settings, "roster": roster, "work": work, "env": {**ENV, **settings.environment()}}
    try:
        yield hub
    finally:
        tear_down(settings)
        shutil.rmtree(work, ignore_errors=True)


def test_8_class_hub_setup_and_release(class_hub, start_server):
    settings = class_hub["settings"]
    result = hub_cli(class_hub, "accounts", "--passwords", str(class_hub["work"] / "passwords.txt"))
    assert HUB_STUDENT in result.stdout and pwd.getpwnam(HUB_STUDENT)
    command = ["make", "--no-print-directory", "-C", str(REPO), "hub", f"ROSTER={class_hub['roster']}"]
    command += [f"HUB_STATE={settings.state}", f"HUB_PORT={settings.port}"]
    hub = start_server(command, env=class_hub["env"], name="make hub")
    wait_for_http(f"{settings.url}/hub/api/", timeout=300, server=hub, ready=lambda r: r.status_code == 200)
    formgrader = requests.get(f"{settings.url}/services/tf-basics/formgrader", timeout=30, allow_redirects=False)
    assert formgrader.status_code in (302, 403)  # formgrader is there, behind the hub's login
    # The guide's assignment is 01; the test uses the small one (its source copied in by the grader).
    shutil.copytree(FIXTURES / "source" / ASSIGNMENT, settings.course_dir / "solutions" / ASSIGNMENT)
    subprocess.run(["chown", "-R", f"{HUB_GRADER}:{HUB_GRADER}", str(settings.course_dir)], check=True)
    hub_cli(class_hub, "classroom", "generate", ASSIGNMENT)
    hub_cli(class_hub, "nbgrader", "release_assignment", ASSIGNMENT)
    as_student(class_hub, "nbgrader", "fetch_assignment", ASSIGNMENT)
    fetched = Path(pwd.getpwnam(HUB_STUDENT).pw_dir) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    shutil.copy(FIXTURES / "submissions" / "partial" / f"{ASSIGNMENT}.ipynb", fetched)
    os.chown(fetched, pwd.getpwnam(HUB_STUDENT).pw_uid, pwd.getpwnam(HUB_STUDENT).pw_gid)
    as_student(class_hub, "nbgrader", "submit", ASSIGNMENT)


def test_9_class_hub_deadline_collect_grade_feedback_export(class_hub):
    settings = class_hub["settings"]
    hub_cli(class_hub, "nbgrader", "db", "assignment", "add", ASSIGNMENT, "--duedate=2026-12-14 23:59:00 UTC")
    hub_cli(class_hub, "nbgrader", "collect", ASSIGNMENT)
    assert (settings.course_dir / "submitted" / HUB_STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
    graded = hub_cli(class_hub, "classroom", "grade", ASSIGNMENT, "--workers", "2")
    assert f"| {HUB_STUDENT} | graded | 3 / 6 |" in graded.stdout
    hub_cli(class_hub, "classroom", "feedback", ASSIGNMENT)
    hub_cli(class_hub, "nbgrader", "release_feedback", ASSIGNMENT)
    as_student(class_hub, "nbgrader", "fetch_feedback", ASSIGNMENT)
    home = Path(pwd.getpwnam(HUB_STUDENT).pw_dir)
    pages = list((home / ASSIGNMENT / "feedback").glob("*/*.html"))
    assert pages and "BEGIN HIDDEN TESTS" not in pages[0].read_text()
    hub_cli(class_hub, "classroom", "grades")
    rows = list(csv.DictReader((settings.course_dir / "grades.csv").open()))
    assert [(r["student_id"], float(r["score"]), r["duedate"][:10]) for r in rows] == [(HUB_STUDENT, 3.0, "2026-12-14")]
    assert (settings.course_dir / "grades-canvas.csv").exists() and (settings.course_dir / "grades-moodle.csv").exists()
    hub_cli(class_hub, "remove-accounts")
    with pytest.raises(KeyError):
        pwd.getpwnam(HUB_STUDENT)

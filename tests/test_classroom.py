"""Grading a whole class: every prepared submission is graded or flagged with a reason, none stops
the others, an interrupted run loses nothing, and feedback never shows hidden tests."""

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from course_lib.dev import classroom
from course_lib.dev.grading import CourseDirectory

FIXTURES = Path(__file__).parent / "fixtures" / "classroom"
SOURCES = FIXTURES / "source"
SUBMISSIONS = FIXTURES / "submissions"
ASSIGNMENT = "tiny-assignment"
# Short limits so the endless loop and the memory hog end quickly; the course defaults are larger.
LIMITS = {"COURSE_GRADING_CELL_TIMEOUT": "10", "COURSE_GRADING_MEMORY_MB": "2048"}

# student: (status, score out of 6, words the reason must contain)
EXPECTED = {
    "perfect": ("graded", 6, ""),
    "untouched": ("graded", 0, ""),
    "partial": ("graded", 3, ""),
    "syntax-error": ("graded", 4, "syntax error"),
    "infinite-loop": ("graded", 5, "time limit"),
    "memory-hog": ("graded", 5, "memory limit"),
    "huge-output": ("graded", 6, ""),
    "edited-locked-test": ("graded", 5, ""),  # the locked test is restored, so the wrong answer fails it
    "deleted-test": ("graded", 3, ""),  # the deleted test comes back and fails the wrong answer
    "kernel-crash": ("flagged", None, "kernel died"),
    "invalid-json": ("flagged", None, "not valid JSON"),
}


def run_cli(*args, env_extra=None, check=True):
    env = {**os.environ, **LIMITS, **(env_extra or {})}
    result = subprocess.run(
        [sys.executable, "-m", "course_lib.dev.classroom", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("class") / "course"
    run_cli("--course", str(root), "--sources", str(SOURCES), "setup")
    run_cli("--course", str(root), "--sources", str(SOURCES), "generate")
    result = run_cli("--course", str(root), "--sources", str(SOURCES), "grade", ASSIGNMENT, "--from", str(SUBMISSIONS))
    report = {o["student"]: o for o in json.loads((root / f"grading-report-{ASSIGNMENT}.json").read_text())}
    return root, report, result.stdout


@pytest.mark.slow  # nbgrader grades submissions
def test_every_prepared_submission_is_graded_or_flagged_with_its_expected_score(graded_class):
    _, report, stdout = graded_class
    assert sorted(report) == sorted(EXPECTED), stdout
    for student, (status, score, reason) in EXPECTED.items():
        outcome = report[student]
        assert outcome["status"] == status, f"{student}: {outcome}"
        assert outcome["score"] == score, f"{student}: {outcome}"
        assert reason in outcome["reason"], f"{student}: {outcome}"
    assert "9 graded, 2 flagged" in stdout


@pytest.mark.slow  # nbgrader grades submissions
def test_huge_output_is_truncated_in_the_graded_notebook(graded_class):
    root, *_ = graded_class
    graded = root / "autograded" / "huge-output" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert graded.stat().st_size < 400_000, "LimitOutput should keep the graded notebook small"


@pytest.mark.slow  # nbgrader grades submissions
def test_feedback_does_not_reveal_hidden_tests(graded_class):
    root, *_ = graded_class
    run_cli("--course", str(root), "--sources", str(SOURCES), "feedback", ASSIGNMENT)
    pages = {p.parts[-3]: p.read_text() for p in (root / "feedback").glob(f"*/{ASSIGNMENT}/*.html")}
    assert {"perfect", "partial", "untouched"} <= set(pages)
    for student, page in pages.items():
        assert "BEGIN HIDDEN TESTS" not in page, student
        assert "(8, 28, 28, 1)" not in page and "bytes_for(10," not in page, student
        assert "hidden tests ran here" in page, student
    assert "ResNet50 in float32" in pages["perfect"]  # the visible test stays visible


@pytest.mark.slow  # nbgrader grades submissions
def test_grades_export_to_csv(graded_class):
    root, *_ = graded_class
    out = root / "grades.csv"
    run_cli("--course", str(root), "--sources", str(SOURCES), "grades", "--out", str(out))
    rows = out.read_text().splitlines()
    header = rows[0].split(",")
    by_student = {r.split(",")[header.index("student_id")]: r.split(",") for r in rows[1:]}
    assert float(by_student["perfect"][header.index("score")]) == 6
    assert float(by_student["partial"][header.index("score")]) == 3


def grading_processes_of(pid: int) -> list[int]:
    """Worker nbgraders started by the grading process `pid` (they carry its pid in their environment)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"COURSE_GRADING_PARENT_PID={pid}".encode() in env:
            found.append(int(proc.name))
    return found


@pytest.mark.slow  # nbgrader grades submissions
def test_a_killed_run_keeps_what_it_graded_and_resumes(tmp_path):
    """Kill a real 2-worker grading run once its report names a student; the rerun grades the rest."""
    root = tmp_path / "course"
    run_cli("--course", str(root), "--sources", str(SOURCES), "setup")
    run_cli("--course", str(root), "--sources", str(SOURCES), "generate")
    submissions = tmp_path / "subs"
    students = {"partial": 3, "perfect": 6, "untouched": 0, "deleted-test": 3, "huge-output": 6}
    for student in students:
        shutil.copytree(SUBMISSIONS / student, submissions / student)
    report = root / f"grading-report-{ASSIGNMENT}.json"
    command = ["--course", str(root), "--sources", str(SOURCES), "grade", ASSIGNMENT, "--workers", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "course_lib.dev.classroom", *command, "--from", str(submissions)],
        env={**os.environ, **LIMITS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = grading_processes_of(process.pid)
    process.kill()
    process.wait()
    first = json.loads(report.read_text())  # written atomically: always whole JSON
    assert first and all(o["status"] == "graded" for o in first)
    assert len(first) < len(students), "killed before the end: make the run longer"
    deadline = time.monotonic() + 10
    while grading_processes_of(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and grading_processes_of(process.pid) == [], "the workers die with the grading process"

    result = run_cli(*command)
    for outcome in first:
        assert f"{outcome['student']}: already graded ({outcome['score']}/{outcome['max_score']}), skipped" in (
            result.stdout
        )
    final = {o["student"]: o for o in json.loads(report.read_text())}
    assert {s: final[s]["score"] for s in final} == students
    assert not (root / ".grading-scratch").exists()
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:  # each submission once, no grade twice
        assert gradebook.assignments[0].num_submissions == len(students)
        assert {s: gradebook.find_submission(ASSIGNMENT, s).score for s in students} == students
        assert sum(len(n.grades) for s in students for n in gradebook.find_submission(ASSIGNMENT, s).notebooks) == (
            3 * len(students)
        )


@pytest.mark.slow  # nbgrader grades submissions
def test_lms_zip_is_collected_with_zip_collect(tmp_path):
    course = CourseDirectory(tmp_path / "course", [ASSIGNMENT], sources=SOURCES)
    course.generate()
    archive = tmp_path / "lms-download.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for student in ("perfect", "partial"):
            bundle.write(SUBMISSIONS / student / f"{ASSIGNMENT}.ipynb", f"{student}_{ASSIGNMENT}.ipynb")
    assert classroom.collect(course, ASSIGNMENT, archive) == ["partial", "perfect"]
    assert (course.root / "submitted" / "perfect" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()


def test_the_course_directory_must_be_outside_the_repository():
    result = run_cli("--course", str(Path(classroom.REPO_ROOT) / "course"), "setup", check=False)
    assert result.returncode == 2 and "outside the repository" in result.stderr


def test_commands_other_than_setup_need_a_course_directory(tmp_path):
    result = run_cli("--course", str(tmp_path / "nowhere"), "grade", ASSIGNMENT, check=False)
    assert result.returncode == 2 and "not a course directory yet" in result.stderr


@pytest.mark.slow  # nbgrader grades submissions
def test_grading_benchmark_grades_copies_of_the_solution():
    result = classroom.benchmark_grading(ASSIGNMENT, copies=1, sources=SOURCES)
    assert (result["submissions"], result["graded"], result["full_marks"]) == (1, 1, 1)
    assert result["peak_rss_mib"] > 20 and result["seconds"] > 0

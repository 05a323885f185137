"""Parallel grading (issue 19, item 4): N students at a time, one writer for nbgrader's SQLite gradebook.

The same submissions graded with 1 worker, with 2 workers and by plain `nbgrader autograde` (all
students in one nbgrader process, nbgrader's own path) leave the same gradebook: every cell's score,
flag and comment, and as many rows. The report is written atomically, one run holds a course at a
time, and the worker count follows the CPUs the process may use.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from course_lib.dev import classroom, parallel_grading
from course_lib.dev.grading import CourseDirectory

FIXTURES = Path(__file__).parent / "fixtures" / "classroom"
SOURCES = FIXTURES / "source"
SUBMISSIONS = FIXTURES / "submissions"
ASSIGNMENT = "tiny-assignment"
# Graded, partly graded, a syntax error, a restored test, a kernel that dies: every path of a merge.
STUDENTS = ["perfect", "partial", "untouched", "syntax-error", "deleted-test", "kernel-crash"]


def gradebook_rows(root: Path) -> dict:
    """Every submitted cell's grade and comment, and the row counts, straight from the SQLite file."""
    db = sqlite3.connect(root / "gradebook.db")
    try:
        grades = db.execute(
            """SELECT s.student_id, n.name, c.name, g.auto_score, g.manual_score, g.needs_manual_grade
               FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id
               JOIN submitted_assignment s ON sn.assignment_id = s.id
               JOIN notebook n ON sn.notebook_id = n.id JOIN base_cell c ON g.cell_id = c.id"""
        ).fetchall()
        comments = db.execute(
            """SELECT s.student_id, c.name, m.auto_comment
               FROM comment m JOIN submitted_notebook sn ON m.notebook_id = sn.id
               JOIN submitted_assignment s ON sn.assignment_id = s.id JOIN base_cell c ON m.cell_id = c.id"""
        ).fetchall()
        counts = {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("student", "submitted_assignment", "submitted_notebook", "grade", "comment")
        }
    finally:
        db.close()
    return {
        "grades": {(s, n, c): (auto, manual, bool(flag)) for s, n, c, auto, manual, flag in grades},
        "comments": {(s, c): text for s, c, text in comments},
        "counts": counts,
        "n_grade_rows": len(grades),
    }


def new_course(root: Path) -> CourseDirectory:
    course = classroom.setup(root, SOURCES)
    classroom.generate(course, [ASSIGNMENT])
    for student in STUDENTS:
        course.submit(student, ASSIGNMENT, SUBMISSIONS / student / f"{ASSIGNMENT}.ipynb")
    return course


@pytest.fixture(scope="module")
def three_gradings(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("COURSE_GRADING_CELL_TIMEOUT", "10")
    scratch = tmp_path_factory.mktemp("parallel")
    serial, parallel, reference = (new_course(scratch / name) for name in ("serial", "parallel", "reference"))
    outcomes = {
        "serial": classroom.grade(serial, ASSIGNMENT, workers=1),
        "parallel": classroom.grade(parallel, ASSIGNMENT, workers=2),
    }
    reference.autograde(ASSIGNMENT)  # nbgrader's own: one process, every student, one writer
    return {"serial": serial, "parallel": parallel, "reference": reference, "outcomes": outcomes}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.slow  # nbgrader grades 18 submissions
def test_one_worker_two_workers_and_plain_nbgrader_leave_the_same_gradebook(three_gradings):
    serial = gradebook_rows(three_gradings["serial"].root)
    parallel = gradebook_rows(three_gradings["parallel"].root)
    reference = gradebook_rows(three_gradings["reference"].root)
    assert serial["counts"]["submitted_assignment"] == len(STUDENTS)
    assert serial["n_grade_rows"] == serial["counts"]["grade"] == len(STUDENTS) * 3  # no grade lost or doubled
    assert parallel == serial
    assert reference == serial
    scores = {
        (student, cell): auto for (student, _, cell), (auto, _, _) in serial["grades"].items() if auto is not None
    }
    assert scores[("perfect", "ex3-tests")] == 3 and scores[("partial", "ex3-tests")] == 0


@pytest.mark.slow  # nbgrader grades 18 submissions
def test_the_reports_agree_whatever_the_number_of_workers(three_gradings):
    def summary(outcomes):
        return {o.student: (o.status, o.score, o.max_score) for o in outcomes}

    outcomes = three_gradings["outcomes"]
    assert summary(outcomes["parallel"]) == summary(outcomes["serial"])
    assert summary(outcomes["serial"])["kernel-crash"][0] == "flagged"
    for course in ("serial", "parallel"):
        root = three_gradings[course].root
        assert not (root / parallel_grading.SCRATCH).exists(), "scratch courses are removed after the run"
        assert sorted(p.name for p in (root / "autograded").iterdir()) == sorted(set(STUDENTS) - {"kernel-crash"})


@pytest.mark.slow  # nbgrader grades submissions
def test_regrading_keeps_a_manual_score_as_nbgrader_does(three_gradings):
    """A merge updates the autograded fields only: a grader's manual score survives a regrade."""
    from nbgrader.api import Gradebook

    course = three_gradings["parallel"]
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gradebook:
        grade: Any = gradebook.find_grade("ex1-tests", ASSIGNMENT, ASSIGNMENT, "partial")  # Column[float] in nbgrader
        grade.manual_score = 0.5
        gradebook.db.commit()
    before = gradebook_rows(course.root)["counts"]
    [outcome] = classroom.grade(course, ASSIGNMENT, force=True, workers=2, students=["partial"])
    assert outcome.status == "graded"
    after = gradebook_rows(course.root)
    assert after["counts"] == before
    assert after["grades"][("partial", ASSIGNMENT, "ex1-tests")] == (1.0, 0.5, True)  # needs review, as nbgrader sets


def test_the_report_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "grading-report-x.json"
    first = {"a": classroom.StudentOutcome("a", "graded", 1.0, 2.0)}
    classroom.write_report(path, first)

    def interrupted(source, target):
        raise KeyboardInterrupt  # the run is stopped between writing the new report and renaming it

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        classroom.write_report(path, {**first, "b": classroom.StudentOutcome("b", "graded", 2.0, 2.0)})
    monkeypatch.undo()
    assert [o["student"] for o in json.loads(path.read_text())] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "no temporary file left behind"


def test_a_report_cut_short_by_an_older_version_is_set_aside(tmp_path, capsys):
    path = tmp_path / "grading-report-x.json"
    path.write_text('[{"student": "a", "status": "gra')
    assert classroom.read_report(path) == {}
    assert (tmp_path / "grading-report-x.json.broken").exists() and not path.exists()
    assert "unreadable" in capsys.readouterr().out


def test_one_grading_run_per_course_directory(tmp_path):
    with parallel_grading.exclusive_run(tmp_path):
        failures = []

        def second_run():
            try:
                with parallel_grading.exclusive_run(tmp_path):
                    pass
            except parallel_grading.CourseBusyError as error:
                failures.append(str(error))

        thread = threading.Thread(target=second_run)
        thread.start()
        thread.join()
    assert failures and "another grading run" in failures[0]
    with parallel_grading.exclusive_run(tmp_path):  # released when the first run ends
        pass


def test_workers_follow_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(parallel_grading, "usable_cpus", lambda: 8.0)
    assert parallel_grading.default_workers() == 4  # the affinity mask
    monkeypatch.setattr(parallel_grading, "usable_cpus", lambda: 1.5)
    assert parallel_grading.default_workers() == 1  # a cgroup quota of 1.5 CPUs
    monkeypatch.setattr(parallel_grading, "usable_cpus", lambda: 0.5)
    assert parallel_grading.default_workers() == 1  # never 0


def test_a_scratch_course_holds_one_student_and_a_copy_of_the_gradebook(tmp_path):
    root = tmp_path / "course"
    for student in ("ann", "bob"):
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_text("{}")
    shutil.copytree(SOURCES / ASSIGNMENT, root / "solutions" / ASSIGNMENT)
    db = sqlite3.connect(root / "gradebook.db")
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    db.close()
    snapshot = parallel_grading.snapshot_gradebook(root / "gradebook.db", tmp_path / "snap" / "gradebook.db")
    scratch = parallel_grading.prepare_scratch(root, ASSIGNMENT, "ann", snapshot)
    assert [p.name for p in (scratch / "submitted").iterdir()] == ["ann"]
    assert (scratch / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
    assert sqlite3.connect(scratch / "gradebook.db").execute("SELECT x FROM t").fetchall() == [(1,)]


def test_make_passes_the_worker_count_and_the_canvas_column(tmp_path):
    """`make grade GRADING_WORKERS=3` and `make grades CANVAS_ID=...` reach the classroom command (make -n)."""

    def dry_run(*args):
        result = subprocess.run(
            ["make", "-n", "--no-print-directory", "-C", str(Path(__file__).resolve().parents[1]), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    common = [f"COURSE_DIR={tmp_path}", "ASSIGNMENT=tiny-assignment"]
    assert "grade tiny-assignment" in dry_run("grade", *common) and "--workers" not in dry_run("grade", *common)
    assert "--workers 3" in dry_run("grade", *common, "GRADING_WORKERS=3")
    assert "--canvas-id sis-user-id" in dry_run("grades", f"COURSE_DIR={tmp_path}", "CANVAS_ID=sis-user-id")

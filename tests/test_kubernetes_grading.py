"""Grading a class as a Kubernetes Indexed Job (deploy/kubernetes/grading/job.yaml, course_lib/dev/batch_grading.py).

The Job's own shell script runs here for real on a small class of the fixture assignment: each batch
grades in a course of its own with the course's grading command (`classroom grade`, which
tests/test_parallel_grading.py compares with plain nbgrader), and the instructor's merge must carry
every score, flag and report line of every batch into the one gradebook, unchanged.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from course_lib.dev import batch_grading, classroom
from course_lib.dev.grading import CourseDirectory
from course_lib.paths import REPO_ROOT

JOB = REPO_ROOT / "deploy" / "kubernetes" / "grading" / "job.yaml"
FIXTURES = Path(__file__).parent / "fixtures" / "classroom"
ASSIGNMENT = "tiny-assignment"
STUDENTS = ["perfect", "partial", "invalid-json"]  # sorted: invalid-json, partial | perfect


def test_batches_cover_the_class_once():
    students = [f"s{i:02d}" for i in range(7)]
    batches = [batch_grading.batch_students(students[::-1], i, 3) for i in range(batch_grading.completions(7, 3))]
    assert batches == [students[0:3], students[3:6], students[6:7]]
    assert batch_grading.batch_students(students, 5, 3) == []  # an index past the class grades nobody
    with pytest.raises(ValueError, match="batch size"):
        batch_grading.batch_students(students, 0, 0)


def test_a_folder_that_is_not_a_course_is_refused_with_a_reason(tmp_path, capsys):
    (tmp_path / "submitted" / "ada" / ASSIGNMENT).mkdir(parents=True)
    args = ["prepare", ASSIGNMENT, "--course", str(tmp_path), "--index", "0", "--batch-size", "2"]
    assert batch_grading.main([*args, "--into", str(tmp_path / "batch")]) == 3
    assert f"has no solutions/{ASSIGNMENT}: is it the course directory?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        batch_grading.main([*args, "--into", str(REPO_ROOT / "batch")])
    assert "outside the repository" in capsys.readouterr().err
    (tmp_path / "solutions" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "keep" / "notes.txt").parent.mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    assert batch_grading.main([*args, "--into", str(tmp_path / "keep")]) == 3
    assert "not a batch's course" in capsys.readouterr().err
    assert (tmp_path / "keep" / "notes.txt").read_text() == "mine"  # never deleted


def test_merge_with_no_batches_names_every_student(tmp_path, capsys):
    course = classroom.setup(tmp_path / "course", FIXTURES / "source")
    for student in STUDENTS:
        course.submit(student, ASSIGNMENT, FIXTURES / "submissions" / student / f"{ASSIGNMENT}.ipynb")
    merge = ["merge", ASSIGNMENT, "--course", str(course.root), "--batch-size", "2"]
    assert batch_grading.main(merge) == 1
    err = capsys.readouterr().err
    assert "not graded yet: invalid-json, partial, perfect; rerun the Job's indexes 0,1" in err


def job_container() -> dict:
    job = yaml.safe_load(JOB.read_text())
    return job["spec"]["template"]["spec"]["containers"][0]


def run_completion(course: Path, scratch: Path, index: int) -> subprocess.CompletedProcess:
    """The Job's container command, as the kubelet would run it, with the pod's paths moved to tmp."""
    container = job_container()
    env = {item["name"]: item["value"] for item in container["env"]}
    env.update(
        COURSE_DIR=str(course),
        SCRATCH=str(scratch),
        ASSIGNMENT=ASSIGNMENT,
        BATCH_SIZE="2",
        JOB_COMPLETION_INDEX=str(index),
        COURSE_GRADING_CELL_TIMEOUT="10",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        HOME=os.environ.get("HOME", str(scratch)),
    )
    return subprocess.run(
        [*container["command"], *container["args"]],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def scores(root: Path) -> dict:
    results = CourseDirectory(root, []).results(ASSIGNMENT)
    return {s: (r.graded, r.score, r.max_score, r.test_scores) for s, r in results.items()}


def statuses(root: Path) -> dict:
    report = classroom.read_report(root / f"grading-report-{ASSIGNMENT}.json")
    return {s: (o.status, o.score, o.max_score, o.reason) for s, o in report.items()}


@pytest.mark.slow  # nbgrader grades 2 submissions; the Job script starts 3 Python processes
def test_the_indexed_job_and_the_merge_grade_as_make_grade_does(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_CELL_TIMEOUT", "10")
    course = classroom.setup(tmp_path / "course", FIXTURES / "source")
    classroom.generate(course, [ASSIGNMENT])
    for student in STUDENTS:
        course.submit(student, ASSIGNMENT, FIXTURES / "submissions" / student / f"{ASSIGNMENT}.ipynb")

    # Completion 0 by the same three steps in this process (fewer Python start-ups), completion 1 by
    # the Job's own script below.
    batch = tmp_path / "pod-0" / "course"
    assert batch_grading.prepare(course.root, ASSIGNMENT, 0, 2, batch) == ["invalid-json", "partial"]
    assert classroom.main(["--course", str(batch), "grade", ASSIGNMENT, "--workers", "1"]) == 0
    exported = course.root / "batches" / ASSIGNMENT / "0"
    assert batch_grading.export(batch, ASSIGNMENT, exported) == ["invalid-json", "partial"]
    merge = ["merge", ASSIGNMENT, "--course", str(course.root), "--batch-size", "2"]
    assert batch_grading.main(merge) == 1  # one batch is not in yet
    assert "not graded yet: perfect; rerun the Job's indexes 1" in capsys.readouterr().err

    second = run_completion(course.root, tmp_path / "pod-1", 1)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "batch 1: 1 students (perfect)" in second.stdout
    assert batch_grading.main(merge) == 0
    assert not (course.root / ".grading-scratch").exists()
    merged = scores(course.root)

    # What each batch's own grading run recorded, in its own course directory on the "pod's" disk
    batches = [tmp_path / "pod-0" / "course", tmp_path / "pod-1" / "course"]
    assert merged == {**scores(batches[0]), **scores(batches[1])}
    assert statuses(course.root) == {**statuses(batches[0]), **statuses(batches[1])}
    assert merged["perfect"][1] == merged["perfect"][2] > merged["partial"][1] > 0  # the fixture's answers
    assert merged["invalid-json"][0] is False  # flagged before grading: no submission in the gradebook
    assert statuses(course.root)["invalid-json"][0] == "flagged"
    for student in ("perfect", "partial"):
        assert (course.root / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()

    assert batch_grading.main(merge) == 0  # merging again changes nothing
    assert scores(course.root) == merged

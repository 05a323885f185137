"""Autograde many students at once, and keep one writer for the gradebook (nbgrader#174).

nbgrader's gradebook is one SQLite file: two `nbgrader autograde` processes on it at the same time
meet "database is locked" (SQLite takes one writer at a time and gives up after its busy timeout)
and nbgrader drops that submission. So no worker writes to the course's gradebook:

- each student is autograded by its own `nbgrader autograde` in a scratch course directory,
  `<course>/.grading-scratch/<assignment>/<student>/`, holding a copy of the assignment's source,
  the student's submission and a snapshot of the gradebook taken when the run started; the
  grading kernel's time and memory limits apply as in any autograde (kernel_limits.py);
- the grading process alone then merges the result, one student at a time: the autograded files
  are renamed into `<course>/autograded/`, and what autograde wrote for that submission (each
  grade's auto score and needs-manual-grade flag, each comment's auto comment, the late penalty
  and the timestamp) is copied into the course's gradebook, in the same way `nbgrader autograde`
  updates it: manual scores and comments already there stay.

A worker's nbgrader dies with the grading process (PR_SET_PDEATHSIG on Linux), and its kernel with
it (ipykernel's parent poller), so a killed run leaves no grading behind it; the next run removes
the stale scratch folders. One run per course directory at a time (a lock file).

    python -m course_lib.dev.parallel_grading autograde ARGS...   # a worker's nbgrader (not a tool to run by hand)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from course_lib.cgroups import usable_cpus
from course_lib.dev.generate import venv_env
from course_lib.paths import REPO_ROOT, SOLUTIONS

SCRATCH = ".grading-scratch"
LOCK = ".grading.lock"
PR_SET_PDEATHSIG = 1


class GradingError(RuntimeError):
    """Grading cannot start: the message says why."""


class CourseBusyError(GradingError):
    """Another grading run holds the course directory."""


def default_workers() -> int:
    """The CPUs this process may use: its affinity mask, and the cgroup's CPU quota when lower."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity masks
        affinity = os.cpu_count() or 1
    return max(1, int(min(affinity, usable_cpus())))


@contextmanager
def exclusive_run(root: Path) -> Iterator[None]:
    """Hold the course directory's grading lock; the kernel releases it when the process dies."""
    handle = open(root / LOCK, "a")  # noqa: SIM115 - held until the run ends
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CourseBusyError(f"another grading run is using {root}; wait for it to finish") from None
        yield
    finally:
        handle.close()


def snapshot_gradebook(database: Path, target: Path) -> Path:
    """A consistent copy of the gradebook (SQLite's backup API), which workers copy in turn."""
    if not database.exists():
        raise GradingError(f"no gradebook at {database}: generate the assignment first (make generate)")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return target


def scratch_folder(root: Path, assignment: str, student: str = "") -> Path:
    return root / SCRATCH / assignment / student if student else root / SCRATCH / assignment


def prepare_scratch(root: Path, assignment: str, student: str, snapshot: Path) -> Path:
    """A course directory with only this student's submission, the source and a gradebook copy."""
    scratch = scratch_folder(root, assignment, student)
    shutil.rmtree(scratch, ignore_errors=True)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    shutil.copytree(root / SOLUTIONS / assignment, scratch / SOLUTIONS / assignment, ignore=ignore)
    shutil.copytree(root / "submitted" / student / assignment, scratch / "submitted" / student / assignment)
    shutil.copy(snapshot, scratch / "gradebook.db")
    return scratch


def autograde(scratch: Path, assignment: str, student: str) -> subprocess.CompletedProcess:
    """`nbgrader autograde` of one student in a scratch course (the repository's nbgrader_config.py)."""
    command = [
        sys.executable,
        "-m",
        "course_lib.dev.parallel_grading",
        "autograde",
        assignment,
        f"--student={student}",
        "--force",
        f"--CourseDirectory.root={scratch}",
        f"--CourseDirectory.db_url=sqlite:///{scratch / 'gradebook.db'}",
    ]
    env = {**venv_env(), "COURSE_GRADING_PARENT_PID": str(os.getpid())}
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, env=env)


@dataclass
class Attempt:
    """One student's autograde in its scratch course, before the merge."""

    student: str
    scratch: Path
    returncode: int
    stderr: str


def grade_in_scratch(root: Path, assignment: str, student: str, snapshot: Path) -> Attempt:
    """A worker's job: prepare the scratch course and autograde the student there."""
    scratch = prepare_scratch(root, assignment, student, snapshot)
    result = autograde(scratch, assignment, student)
    return Attempt(student, scratch, result.returncode, result.stderr)


def _submission_record(database: Path, assignment: str, student: str) -> dict | None:
    """What autograde wrote for one submission, or None when there is no submission."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{database}") as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return None
        return {
            "timestamp": submission.timestamp,
            "notebooks": {
                notebook.name: {
                    "late_submission_penalty": notebook.late_submission_penalty,
                    "grades": {g.name: (g.auto_score, g.needs_manual_grade) for g in notebook.grades},
                    "comments": {c.name: c.auto_comment for c in notebook.comments},
                }
                for notebook in submission.notebooks
            },
        }


def merge(root: Path, attempt: Attempt, assignment: str) -> bool:
    """Move one student's autograde result into the course (files, then gradebook); the one writer.

    Returns False when the scratch gradebook has no submission (nbgrader stopped before creating
    one): the course's gradebook is then left as it was, as a failed `nbgrader autograde` leaves it.
    """
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    graded = attempt.scratch / "autograded" / attempt.student / assignment
    target = root / "autograded" / attempt.student / assignment
    shutil.rmtree(target, ignore_errors=True)  # what `autograde --force` does before grading
    if graded.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(graded, target)
    record = _submission_record(attempt.scratch / "gradebook.db", assignment, attempt.student)
    if record is None:
        return False
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        # nbgrader's add_submission builds rows before adding them to the session; SQLAlchemy warns
        # about it (also inside `nbgrader autograde`), and the rows are stored all the same.
        warnings.simplefilter("ignore", SAWarning)
        gradebook.update_or_create_student(attempt.student)
        timestamp = {"timestamp": record["timestamp"]} if record["timestamp"] else {}
        submission = gradebook.update_or_create_submission(assignment, attempt.student, **timestamp)
        for notebook in submission.notebooks:
            done = record["notebooks"].get(notebook.name)
            if done is None:
                continue
            notebook.late_submission_penalty = done["late_submission_penalty"]
            for grade in notebook.grades:
                grade.auto_score, grade.needs_manual_grade = done["grades"][grade.name]
            for comment in notebook.comments:
                comment.auto_comment = done["comments"][comment.name]
        gradebook.db.commit()
    return True


def remove_scratch(root: Path, assignment: str, student: str = "") -> None:
    shutil.rmtree(scratch_folder(root, assignment, student), ignore_errors=True)
    if not student and (root / SCRATCH).is_dir() and not any((root / SCRATCH).iterdir()):
        (root / SCRATCH).rmdir()


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the grading process dies (killed runs leave nothing)."""
    parent = int(os.environ.get("COURSE_GRADING_PARENT_PID", "0"))
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: a killed run's workers finish on their own
        return
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def run_worker(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["autograde"]:
        raise SystemExit(__doc__)
    _die_with_parent()
    import runpy

    sys.argv = ["nbgrader", *args]
    runpy.run_module("nbgrader", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    run_worker()

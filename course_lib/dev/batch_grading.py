"""Grade a class in batches on separate machines (a Kubernetes Indexed Job), then merge into one gradebook.

nbgrader's gradebook is one SQLite file, and SQLite on a network volume shared by many pods is the
"database is locked" failure again (nbgrader#174). So each batch grades in a course of its own on the
pod's local disk, with the course's ordinary grading command, and only the instructor's merge writes
the course's gradebook:

    # in pod number $JOB_COMPLETION_INDEX (deploy/kubernetes/grading/job.yaml)
    python -m course_lib.dev.batch_grading prepare ASSIGNMENT --course /srv/course \\
        --index "$JOB_COMPLETION_INDEX" --batch-size 30 --into /scratch/course
    python -m course_lib.dev.classroom --course /scratch/course grade ASSIGNMENT --workers 1
    python -m course_lib.dev.batch_grading export ASSIGNMENT --from /scratch/course \\
        --to /srv/course/batches/ASSIGNMENT/"$JOB_COMPLETION_INDEX"

    # the instructor, once the Job has completed (or after each rerun of failed indexes)
    python -m course_lib.dev.batch_grading merge ASSIGNMENT --course /srv/course

Batch i holds the submitted students i*B .. i*B+B-1 in sorted order, so every pod computes its own
batch from the same listing. A batch's export appears at once (a folder renamed into place), so a
pod killed mid-copy leaves nothing half-written; the merge takes each graded or flagged student's
result from the batch's gradebook into the course's with the same code that merges one worker's
result in `make grade` (parallel_grading.merge), and combines the batch reports into the course's
grading-report-<assignment>.json. Merging twice gives the same gradebook. Students submitted but in
no exported batch are named, with the indexes to rerun.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path

from course_lib.dev import classroom
from course_lib.dev.grading import CourseDirectory
from course_lib.dev.parallel_grading import (
    Attempt,
    GradingError,
    exclusive_run,
    merge,
    remove_scratch,
    scratch_folder,
    snapshot_gradebook,
)
from course_lib.paths import REPO_ROOT, SOLUTIONS, assignment_ids

BATCHES = "batches"


def batch_students(students: list[str], index: int, batch_size: int) -> list[str]:
    """Batch `index` of the sorted `students`: the same answer in every pod that lists the same folder."""
    if batch_size < 1 or index < 0:
        raise ValueError(f"batch size must be at least 1 and the index at least 0 (got {batch_size}, {index})")
    ordered = sorted(students)
    return ordered[index * batch_size : (index + 1) * batch_size]


def completions(students: int, batch_size: int) -> int:
    """How many Job completions (batches) a class needs."""
    return math.ceil(students / batch_size)


def prepare(course: Path, assignment: str, index: int, batch_size: int, into: Path) -> list[str]:
    """A course directory at `into` with the source, a copy of the gradebook and batch `index`'s submissions."""
    source = CourseDirectory(course, [])
    students = batch_students(source.submitted_students(assignment), index, batch_size)
    sources = course / SOLUTIONS
    if not (sources / assignment).is_dir():
        raise GradingError(f"{course} has no {SOLUTIONS}/{assignment}: is it the course directory?")
    if into.exists() and any(into.iterdir()):
        if not (into / "nbgrader_config.py").exists():
            raise GradingError(f"{into} holds files that are not a batch's course: give an empty or new folder")
        shutil.rmtree(into)  # an earlier attempt of this pod
    classroom.setup(into, sources)  # the course's sources, and an nbgrader_config.py for this folder
    snapshot_gradebook(course / "gradebook.db", into / "gradebook.db")
    for student in students:
        shutil.copytree(course / "submitted" / student / assignment, into / "submitted" / student / assignment)
    return students


def export(batch_course: Path, assignment: str, target: Path) -> list[str]:
    """Copy a graded batch (report, gradebook, autograded notebooks) to `target`, which appears whole."""
    report = classroom.report_path(CourseDirectory(batch_course, []), assignment)
    outcomes = classroom.read_report(report)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if report.exists():
        shutil.copy(report, staging / report.name)
    snapshot_gradebook(batch_course / "gradebook.db", staging / "gradebook.db")
    for student in outcomes:
        graded = batch_course / "autograded" / student / assignment
        if graded.is_dir():
            shutil.copytree(graded, staging / "autograded" / student / assignment)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return sorted(outcomes)


def batch_folders(course: Path, assignment: str) -> list[Path]:
    root = course / BATCHES / assignment
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: (p.stat().st_mtime, p.name))  # a rerun's newer export wins


def merge_batches(course: Path, assignment: str) -> tuple[dict[str, classroom.StudentOutcome], list[str]]:
    """Merge every exported batch into the course; returns the outcomes and the students still missing."""
    course_dir = CourseDirectory(course, [])
    with exclusive_run(course):
        report = classroom.report_path(course_dir, assignment)
        outcomes = classroom.read_report(report)
        for folder in batch_folders(course, assignment):
            batch_report = folder / report.name
            for student, outcome in classroom.read_report(batch_report).items():
                outcomes[student] = outcome
                graded = folder / "autograded" / student / assignment
                if outcome.status == "flagged" and not graded.is_dir():
                    continue  # never autograded (not a notebook): `make grade` leaves the gradebook as it was
                # A copy beside the course (same file system: merge renames the autograded folder into place).
                work = scratch_folder(course, assignment, f"merge-{folder.name}-{student}")
                shutil.rmtree(work, ignore_errors=True)
                if graded.is_dir():
                    shutil.copytree(graded, work / "autograded" / student / assignment)
                work.mkdir(parents=True, exist_ok=True)
                shutil.copy(folder / "gradebook.db", work / "gradebook.db")
                merge(course, Attempt(student, work, 0, ""), assignment)
                shutil.rmtree(work, ignore_errors=True)
            classroom.write_report(report, outcomes)
        remove_scratch(course, assignment)
        missing = [s for s in course_dir.submitted_students(assignment) if s not in outcomes]
    return outcomes, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.batch_grading",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="a batch's own course directory (in the grading pod)")
    prep.add_argument("assignment")
    prep.add_argument("--course", type=Path, required=True, help="the course directory (shared volume)")
    prep.add_argument("--index", type=int, required=True, help="the batch: $JOB_COMPLETION_INDEX")
    prep.add_argument("--batch-size", type=int, required=True)
    prep.add_argument("--into", type=Path, required=True, help="where the batch's course goes (local disk)")
    out = commands.add_parser("export", help="copy a graded batch back to the shared volume")
    out.add_argument("assignment")
    out.add_argument("--from", dest="source", type=Path, required=True)
    out.add_argument("--to", type=Path, required=True)
    mer = commands.add_parser("merge", help="merge every exported batch into the course's gradebook")
    mer.add_argument("assignment")
    mer.add_argument("--course", type=Path, required=True)
    mer.add_argument("--batch-size", type=int, default=0, help="to name the indexes to rerun")
    args = parser.parse_args(argv)

    try:
        if args.command == "prepare":
            into = args.into.resolve()
            if into.is_relative_to(REPO_ROOT):
                parser.error(f"--into must be outside the repository ({REPO_ROOT}); got {into}")
            students = prepare(args.course.resolve(), args.assignment, args.index, args.batch_size, into)
            print(f"batch {args.index}: {len(students)} students ({', '.join(students) or 'none'}) in {into}")
        elif args.command == "export":
            students = export(args.source.resolve(), args.assignment, args.to.resolve())
            print(f"exported {len(students)} students to {args.to}")
        else:
            course = args.course.resolve()
            if args.assignment not in assignment_ids(course / SOLUTIONS):
                parser.error(f"{course} has no assignment {args.assignment!r} under {SOLUTIONS}/")
            outcomes, missing = merge_batches(course, args.assignment)
            graded = sum(1 for o in outcomes.values() if o.status == "graded")
            print(f"merged: {graded} graded, {len(outcomes) - graded} flagged; report: grading-report-"
                  f"{args.assignment}.json")  # fmt: skip
            if missing:
                hint = ""
                if args.batch_size:
                    everyone = CourseDirectory(course, []).submitted_students(args.assignment)
                    indexes = sorted({everyone.index(s) // args.batch_size for s in missing})
                    hint = f"; rerun the Job's indexes {','.join(map(str, indexes))}"
                print(f"not graded yet: {', '.join(missing)}{hint}", file=sys.stderr)
                return 1
    except (GradingError, ValueError) as error:
        print(f"batch_grading: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

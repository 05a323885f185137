"""Generate the student notebooks (notebooks/) from the nbgrader sources (solutions/): an author's step.

`nbgrader generate_assignment` does the work, for all assignments in one process: it removes
solutions and hidden tests and records checksums. It runs in a scratch course directory with its own
gradebook, so generating never touches an instructor's database. The result is then published into
notebooks/ file by file, and never over a file someone edited there: notebooks/.generated.json
records the digest of every generated file, and a file whose digest differs was changed by hand
(students worked in notebooks/ before work/ existed). Such a file is kept and reported; the command
then exits 1, so the author sees it.

    python -m course_lib.dev.generate            # regenerate notebooks/ in the repository
    python -m course_lib.dev.generate --check    # exit 1 if notebooks/ is stale
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.paths import REPO_ROOT, SOLUTIONS, STUDENT_NOTEBOOKS, assignment_ids
from course_lib.workspace import (
    MANIFEST,
    file_digest,
    read_json,
    shipped_files,
    write_bytes_atomically,
    write_json_atomically,
)


def venv_env() -> dict[str, str]:
    """The environment with this interpreter's bin/ first: nbgrader runs `alembic` from PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def nbgrader(args: list[str], course_root: Path) -> subprocess.CompletedProcess:
    """Run an nbgrader command with the repository's config against `course_root`."""
    command = [
        sys.executable,
        "-m",
        "nbgrader",
        *args,
        f"--CourseDirectory.root={course_root}",
        f"--CourseDirectory.db_url=sqlite:///{course_root / 'gradebook.db'}",
    ]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, env=venv_env())


def generate(out_dir: Path, ids: list[str] | None = None) -> Path:
    """Generate student notebooks for `ids` (default: all) into an empty `out_dir`, with their manifest.

    One nbgrader process generates every assignment (a glob over a scratch copy of solutions/):
    ten processes took minutes on a busy 2-core machine, one takes seconds.
    """
    ids = ids or assignment_ids()
    with tempfile.TemporaryDirectory(prefix="course-release-") as scratch:
        course = Path(scratch)
        for assignment in ids:
            shutil.copytree(
                REPO_ROOT / SOLUTIONS / assignment,
                course / SOLUTIONS / assignment,
                ignore=shutil.ignore_patterns(".*", "__pycache__"),
            )
        result = nbgrader(["generate_assignment", "*", "--force", "--create"], course)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{result.stderr[-3000:]}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for assignment in ids:
            shutil.copytree(course / STUDENT_NOTEBOOKS / assignment, out_dir / assignment, dirs_exist_ok=True)
    write_json_atomically(out_dir / MANIFEST, {name: file_digest(out_dir / name) for name in shipped_files(out_dir)})
    return out_dir


@dataclass
class PublishReport:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept_edited: list[str] = field(default_factory=list)


def publish(generated: Path, shipped: Path) -> PublishReport:
    """Copy a generation into notebooks/, never over (or deleting) a file edited by hand there."""
    old_manifest, new_manifest = read_json(shipped / MANIFEST), read_json(generated / MANIFEST)
    manifest = dict(old_manifest)
    report = PublishReport()

    def edited(name: str) -> bool:
        return file_digest(shipped / name) != old_manifest.get(name)

    for name, digest in new_manifest.items():
        target = shipped / name
        if target.exists() and file_digest(target) == digest:
            manifest[name] = digest
        elif target.exists() and edited(name):
            report.kept_edited.append(name)
        else:
            write_bytes_atomically(target, (generated / name).read_bytes())
            manifest[name] = digest
            report.written.append(name)
    for name in sorted(set(old_manifest) - set(new_manifest)):
        target = shipped / name
        if target.exists() and edited(name):
            report.kept_edited.append(name)
            continue
        target.unlink(missing_ok=True)
        manifest.pop(name)
        report.removed.append(name)
    write_json_atomically(shipped / MANIFEST, manifest)
    return report


def stale_files(expected_dir: Path, actual_dir: Path) -> list[str]:
    """Files that differ between a fresh generation and the committed notebooks/."""
    comparison = filecmp.dircmp(expected_dir, actual_dir, ignore=[".ipynb_checkpoints"])
    stale: list[str] = []

    def walk(cmp: filecmp.dircmp, prefix: str) -> None:
        stale.extend(f"{prefix}{name} (missing in notebooks/)" for name in cmp.left_only)
        stale.extend(f"{prefix}{name} (not generated from solutions/)" for name in cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        stale.extend(f"{prefix}{name} (differs)" for name in mismatch + errors)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(comparison, "")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="only report whether notebooks/ is stale")
    args = parser.parse_args(argv)
    if not assignment_ids():
        print("no notebooks in solutions/ yet: nothing to generate")
        return 0
    with tempfile.TemporaryDirectory() as fresh:
        generated = generate(Path(fresh) / STUDENT_NOTEBOOKS)
        if args.check:
            stale = stale_files(generated, REPO_ROOT / STUDENT_NOTEBOOKS)
            print("\n".join(stale) or "notebooks/ is up to date")
            return 1 if stale else 0
        report = publish(generated, REPO_ROOT / STUDENT_NOTEBOOKS)
    print(
        f"notebooks/: {len(report.written)} file(s) written, {len(report.removed)} removed, the rest already up to date"
    )
    for name in report.kept_edited:
        print(
            f"notebooks/{name} was edited by hand, so it was NOT replaced. If this is your work, move it "
            f"to work/{name} (or anywhere outside notebooks/), then run `make notebooks` again.",
            file=sys.stderr,
        )
    return 1 if report.kept_edited else 0


if __name__ == "__main__":
    sys.exit(main())

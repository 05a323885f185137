"""Generate the student notebooks (notebooks/) from the nbgrader sources (solutions/).

`nbgrader generate_assignment` does the work: it removes solutions and hidden tests and records
checksums. It runs in a scratch course directory with its own gradebook, so generating never
touches an instructor's database, and the result is copied into place.

    python -m course_lib.dev.release            # regenerate notebooks/ in the repository
    python -m course_lib.dev.release --check    # exit 1 if notebooks/ is stale
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from course_lib.dev.notebooks import REPO_ROOT

SOURCE = "solutions"
RELEASE = "notebooks"


def venv_env() -> dict[str, str]:
    """The environment with this interpreter's bin/ first: nbgrader runs `alembic` from PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def assignment_ids(root: Path = REPO_ROOT) -> list[str]:
    """The assignments of the course: one folder per notebook under solutions/."""
    return sorted(p.name for p in (root / SOURCE).iterdir() if p.is_dir() and list(p.glob("*.ipynb")))


def nbgrader(args: list[str], course_root: Path) -> subprocess.CompletedProcess:
    """Run an nbgrader command with the repository's config against `course_root`."""
    command = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course_root}",
               f"--CourseDirectory.db_url=sqlite:///{course_root / 'gradebook.db'}"]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, env=venv_env())


def generate(out_dir: Path, ids: list[str] | None = None) -> Path:
    """Generate student notebooks for `ids` (default: all) into `out_dir`/<id>/; returns out_dir."""
    ids = ids or assignment_ids()
    with tempfile.TemporaryDirectory(prefix="course-release-") as scratch:
        course = Path(scratch)
        shutil.copytree(REPO_ROOT / SOURCE, course / SOURCE,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        for assignment in ids:
            result = nbgrader(["generate_assignment", assignment, "--force", "--create"], course)
            if result.returncode != 0:
                raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{result.stderr[-3000:]}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for assignment in ids:
            target = out_dir / assignment
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(course / RELEASE / assignment, target)
    return out_dir


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
    parser = argparse.ArgumentParser(prog="python -m course_lib.dev.release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether notebooks/ is stale")
    args = parser.parse_args(argv)
    if not assignment_ids():
        print("no notebooks in solutions/ yet: nothing to generate")
        return 0
    if args.check:
        with tempfile.TemporaryDirectory() as fresh:
            stale = stale_files(generate(Path(fresh)), REPO_ROOT / RELEASE)
        print("\n".join(stale) or "notebooks/ is up to date")
        return 1 if stale else 0
    generate(REPO_ROOT / RELEASE)
    print(f"generated {len(assignment_ids())} student notebook(s) in {RELEASE}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one place that names where the course lives, where it keeps its files, and its kernels.

nbgrader copies notebooks between course folders, so no notebook may open files by a path
relative to the repository: they ask these functions instead. Every module takes the kernel names
from here, never from a string literal (tests/test_architecture.py checks it); the Makefile,
nbgrader_config.py, binder/postBuild and the Dockerfile repeat them and that test compares them.
"""

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

COURSE_ID = "tf-course"
"""The course's short name: its Jupyter kernel and its cache folder are named after it."""
KERNEL_NAME = COURSE_ID
"""The kernel every course notebook runs on (its kernelspec), registered by `make` and binder/postBuild."""
KERNEL_DISPLAY_NAME = "Python 3 (TF course)"
GRADING_KERNEL_NAME = f"{COURSE_ID}-grading"
"""The kernel nbgrader runs submissions on: the course kernel under memory/CPU/time limits."""


def course_root() -> Path:
    """The course checkout this course_lib belongs to (override with COURSE_ROOT)."""
    override = os.environ.get("COURSE_ROOT")
    return Path(override) if override else _PACKAGE_DIR.parent


REPO_ROOT = course_root()
"""`course_root()` when course_lib was imported: what the author tools (course_lib.dev) work on."""

# The three folders of notebooks, one name each (the workflow: generate, then sync):
SOLUTIONS = "solutions"
"""nbgrader's source notebooks, with solutions and hidden tests: the one source of truth."""
STUDENT_NOTEBOOKS = "notebooks"
"""The student versions the course ships, generated from solutions/ (nbgrader's release directory)."""
WORKSPACE = "work"
"""The student's own copies of the student notebooks (course_lib.workspace); never in git."""


def assignment_ids(sources: Path | None = None) -> list[str]:
    """The assignments of a course: one folder holding a notebook per assignment in `sources`."""
    sources = sources or REPO_ROOT / SOLUTIONS
    return sorted(p.name for p in sources.iterdir() if p.is_dir() and list(p.glob("*.ipynb")))


def data_dir() -> Path:
    """The `data/` folder shipped with the course (override with COURSE_DATA_DIR)."""
    override = os.environ.get("COURSE_DATA_DIR")
    return Path(override) if override else _PACKAGE_DIR.parent / "data"


def cache_dir() -> Path:
    """Where downloaded weights and hub models live (override with COURSE_CACHE_DIR).

    Lab images bake a prefetched cache here, so that notebooks load from disk, not the network.
    """
    override = os.environ.get("COURSE_CACHE_DIR")
    path = Path(override) if override else Path.home() / ".cache" / COURSE_ID
    path.mkdir(parents=True, exist_ok=True)
    return path

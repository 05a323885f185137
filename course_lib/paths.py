"""Where the course finds its shipped data and keeps its downloads.

nbgrader copies notebooks between course folders, so no notebook may open files by a path
relative to the repository: they ask these functions instead.
"""

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def course_root() -> Path:
    """The course checkout this course_lib belongs to (override with COURSE_ROOT)."""
    override = os.environ.get("COURSE_ROOT")
    return Path(override) if override else _PACKAGE_DIR.parent


def data_dir() -> Path:
    """The `data/` folder shipped with the course (override with COURSE_DATA_DIR)."""
    override = os.environ.get("COURSE_DATA_DIR")
    return Path(override) if override else _PACKAGE_DIR.parent / "data"


def cache_dir() -> Path:
    """Where downloaded weights and hub models live (override with COURSE_CACHE_DIR).

    Lab images bake a prefetched cache here, so that notebooks load from disk, not the network.
    """
    override = os.environ.get("COURSE_CACHE_DIR")
    path = Path(override) if override else Path.home() / ".cache" / "tf-course"
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Helpers for the course *TensorFlow Basics for Infrastructure Engineers*.

Notebooks import this package instead of copying code between them. Importing it is cheap:
TensorFlow is imported by the submodules that need it, so `python -m course_lib doctor`
can report a broken TensorFlow install instead of dying with it.
"""

from course_lib.errors import CourseError
from course_lib.paths import cache_dir, data_dir

__version__ = "0.1.0"
__all__ = ["CourseError", "__version__", "cache_dir", "data_dir"]

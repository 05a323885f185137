"""nbgrader configuration for the course (used by `make` targets and the tests).

Source notebooks live in solutions/, student versions are generated into notebooks/.
Each setting below answers a trap we hit or found in nbgrader's tracker (see COURSE_DESIGN.md).
"""

import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades

from course_lib.dev.feedback import HideHiddenTests

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "tf-basics"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# Every submission runs on the grading kernel, whatever kernelspec it carries (nbgrader#417): the
# course environment under memory and CPU-time limits (course_lib/dev/kernel_limits.py).
c.Execute.kernel_name = "tf-course-grading"
c.ExecutePreprocessor.kernel_name = "tf-course-grading"
# Per-cell wall-clock limit: model loading and XLA compiles exceed nbgrader's default of 30 s, and an
# infinite loop must still end. A cell past the limit is interrupted and the rest of the notebook runs.
c.Execute.timeout = int(os.environ.get("COURSE_GRADING_CELL_TIMEOUT", "300"))
c.ExecutePreprocessor.timeout = c.Execute.timeout
c.Execute.interrupt_on_timeout = True

# TensorFlow writes log lines and Python warnings to stderr, and nbgrader gives 0 points to a test
# cell with any stderr output (nbgrader#1904). Drop stderr outputs that are TF/absl logs or warnings.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"(^|\n)("
    r"[EWIF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]"  # absl C++ log lines: E0000 00:00:... file.cc:52]
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|To enable the following instructions:"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "  # older TF C++ log format
    r"|(WARNING|INFO):(absl|tensorflow):"  # Python-side absl/TF logging
    r"|\S+:\d+: \w*Warning: "  # warnings.warn(...) as printed by the warnings module
    r")"
)

# A deleted test cell comes back from the source notebook instead of silently losing its points.
c.OverwriteCells.add_missing_cells = True

# Feedback must not reveal hidden tests (nbgrader#917 shows them by default).
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]

# `nbgrader zip_collect`: LMS downloads name files <student>_<notebook>.ipynb
# (e.g. alice_01-tensorflow-and-keras.ipynb); student ids are letters, digits, dots and dashes.
c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>[A-Za-z0-9.\-]+)_(?P<file_id>[0-9a-z][0-9a-z\-]*\.ipynb)$"

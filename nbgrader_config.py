"""nbgrader configuration for the course (used by `make` targets and the tests).

Source notebooks live in solutions/, student versions are generated into notebooks/.
Each setting below answers a trap we hit or found in nbgrader's tracker (see COURSE_DESIGN.md).
"""

import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.converters import Autograde
from nbgrader.preprocessors import GetGrades

from course_lib.dev.feedback import ExplainLostPoints, HideHiddenTests
from course_lib.dev.scoring import autograde_preprocessors

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

# Only errors cost points (issue 14). nbgrader gives 0 to a test cell with any stderr output
# (nbgrader#1904), and correct TensorFlow code writes to stderr: absl/C++ lines on the first op, the
# first XLA compile and GPU start-up, Keras warnings, logging, progress bars. No pattern keeps up with
# those formats (our IgnorePattern for absl lines missed TF 2.21's epoch-seconds timestamps), so the
# stderr of every test cell becomes an unscored note after the notebook ran (SetAsideStderr, in the
# place of IgnorePattern). `nbgrader validate` and the Validate button run the grading kernel, which
# sends stderr as stdout there. See course_lib/dev/scoring.py. Students' own kernels show everything.
c.Autograde.autograde_preprocessors = autograde_preprocessors(
    Autograde.class_traits()["autograde_preprocessors"].default()
)

# A deleted test cell comes back from the source notebook instead of silently losing its points.
c.OverwriteCells.add_missing_cells = True

# Feedback must not reveal hidden tests (nbgrader#917 shows them by default), and says in one line
# why each test cell below full marks lost its points.
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests, ExplainLostPoints]

# `nbgrader zip_collect`: LMS downloads name files <student>_<notebook>.ipynb
# (e.g. alice_01-tensorflow-and-keras.ipynb); student ids are letters, digits, dots and dashes.
c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>[A-Za-z0-9.\-]+)_(?P<file_id>[0-9a-z][0-9a-z\-]*\.ipynb)$"

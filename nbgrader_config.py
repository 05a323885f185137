"""nbgrader configuration for the course (used by `make` targets and the tests).

Source notebooks live in solutions/, student versions are generated into notebooks/.
Each setting below answers a trap we hit or found in nbgrader's tracker (see COURSE_DESIGN.md).
"""

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "tf-basics"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# Every notebook runs on the course kernel, whatever kernelspec a submission carries (nbgrader#417).
c.Execute.kernel_name = "tf-course"
c.ExecutePreprocessor.kernel_name = "tf-course"
# Model loading and XLA compiles exceed the default 30 s per cell.
c.Execute.timeout = 300
c.ExecutePreprocessor.timeout = 300

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

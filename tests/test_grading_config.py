"""nbgrader's configuration protects correct work from TensorFlow's stderr noise (nbgrader#1904)."""

from pathlib import Path

import pytest

from course_lib.dev.grading import CourseDirectory

FIXTURES = Path(__file__).parent / "fixtures" / "grading"


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    course = CourseDirectory(tmp_path_factory.mktemp("course-noise"), ["stderr-noise"], sources=FIXTURES)
    course.release()
    course.submit("alice", "stderr-noise", course.source_notebook("stderr-noise"))
    log = course.autograde("stderr-noise")
    return course.results("stderr-noise")["alice"], log


def test_tensorflow_log_lines_do_not_cost_points(noisy):
    result, log = noisy
    assert result.test_scores["tf-logs"] == 1, log[-3000:]


def test_python_and_absl_warnings_do_not_cost_points(noisy):
    result, log = noisy
    assert result.test_scores["python-warnings"] == 1, log[-3000:]


def test_other_stderr_output_still_fails_the_test_cell(noisy):
    """The pattern is narrow: a test cell writing anything else to stderr gets 0, as nbgrader intends."""
    result, _ = noisy
    assert result.test_scores["other-stderr"] == 0

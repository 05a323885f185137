"""The assertion helpers used in test cells: they pass right answers and teach on wrong ones."""

import re

import numpy as np
import pytest

from course_lib import checks


def test_check_shape_accepts_a_match_and_wildcards():
    checks.check_shape(np.zeros((2, 224, 224, 3)), (None, 224, 224, 3), "batch")


def test_check_shape_points_at_channel_order_when_axes_are_permuted():
    with pytest.raises(AssertionError, match=r"expected shape \(1, 224, 224, 3\), got \(1, 3, 224, 224\)") as info:
        checks.check_shape(np.zeros((1, 3, 224, 224)), (1, 224, 224, 3), "image batch")
    assert "NCHW/NHWC" in str(info.value)


def test_check_close_reports_the_largest_difference():
    checks.check_close([1.0, 2.0], [1.0, 2.0000001], "values")
    with pytest.raises(AssertionError, match=re.escape("largest difference 0.5")):
        checks.check_close([1.0, 2.5], [1.0, 2.0], "values")


def test_check_close_rejects_a_shape_mismatch_before_comparing():
    with pytest.raises(AssertionError, match=r"expected shape \(3,\), got \(2,\)"):
        checks.check_close([1.0, 2.0], [1.0, 2.0, 3.0], "values")


def test_check_type_and_equal_name_what_was_expected():
    checks.check_type(3, int, "count")
    with pytest.raises(AssertionError, match="count should be a int or float, got str"):
        checks.check_type("3", (int, float), "count")
    with pytest.raises(AssertionError, match="size: expected 4, got 5\nHint: count bytes"):
        checks.check_equal(5, 4, "size", hint="count bytes")


def test_check_between_rejects_out_of_range_and_non_numbers():
    checks.check_between(0.5, 0, 1, "ratio")
    with pytest.raises(AssertionError, match="between 0 and 1, got 2"):
        checks.check_between(2, 0, 1, "ratio")
    with pytest.raises(AssertionError, match="got 'fast'"):
        checks.check_between("fast", 0, 1, "ratio")  # pyright: ignore[reportArgumentType]  (deliberately not a number)


def test_check_keys_lists_missing_keys():
    checks.check_keys({"a": 1, "b": 2}, ["a"], "row")
    with pytest.raises(AssertionError, match=r"missing the key\(s\) \['p95_ms'\]"):
        checks.check_keys({"p50_ms": 1}, ["p50_ms", "p95_ms"], "row")


def test_check_raises_distinguishes_wrong_and_missing_exceptions():
    checks.check_raises(lambda: int("x"), ValueError, "parse")
    with pytest.raises(AssertionError, match="nothing was raised"):
        checks.check_raises(lambda: 1, ValueError, "parse")
    with pytest.raises(AssertionError, match="but it raised KeyError"):
        checks.check_raises(lambda: {}["k"], ValueError, "parse")


def test_check_answer_never_prints_the_expected_value():
    checks.check_answer(2.0000000001, 2.0, "median")
    checks.check_answer(np.array([1.0, 2.0]), [1.0, 2.0], "row")
    with pytest.raises(AssertionError) as failure:
        checks.check_answer(3.5, 176928, "activation bytes")
    assert "176928" not in str(failure.value) and "3.5" in str(failure.value)


def test_check_answer_names_a_known_mistake():
    with pytest.raises(AssertionError, match="the mean, not the median"):
        checks.check_answer(2.5, 2.0, "p50", mistakes=[(2.5, "you took the mean, not the median")])
    with pytest.raises(AssertionError, match="a reshape keeps the memory order"):
        checks.check_answer(
            np.arange(6).reshape(3, 2),
            np.arange(6).reshape(2, 3).T,
            "nhwc",
            [(np.arange(6).reshape(3, 2), "a reshape keeps the memory order")],
        )


def test_check_answer_does_not_take_a_string_for_a_number():
    with pytest.raises(AssertionError):
        checks.check_answer("2", 2, "count")
    with pytest.raises(AssertionError):
        checks.check_answer(True, "yes", "flag")

"""Friendly assertions for the test cells of graded exercises.

A failing check raises AssertionError whose message teaches: what was expected, what the student
gave, and a hint of how to get from one to the other. nbgrader counts any exception as a failed
test, so the message is the student's only feedback: make it worth reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def _fail(message: str, hint: str | None) -> None:
    raise AssertionError(message + (f"\nHint: {hint}" if hint else ""))


def check_type(value: Any, expected: type | tuple[type, ...], name: str, hint: str | None = None) -> None:
    """Fail unless `value` is an instance of `expected`."""
    if not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in expected) if isinstance(expected, tuple) else expected.__name__
        _fail(f"{name} should be a {names}, got {type(value).__name__}: {value!r:.80}", hint)


def check_equal(actual: Any, expected: Any, name: str, hint: str | None = None) -> None:
    """Fail unless `actual == expected` (for scalars, strings, tuples, dicts)."""
    if actual != expected:
        _fail(f"{name}: expected {expected!r}, got {actual!r}", hint)


def check_shape(array: Any, expected: Iterable[int | None], name: str, hint: str | None = None) -> None:
    """Fail unless the array's shape matches; None in `expected` accepts any size on that axis."""
    shape = tuple(getattr(array, "shape", np.shape(array)))
    expected = tuple(expected)
    matches = len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected, strict=False))
    if not matches:
        if sorted(map(str, shape)) == sorted(map(str, expected)) and len(shape) == 4:
            hint = hint or "the same sizes in another order: check channels-first vs channels-last (NCHW/NHWC)"
        _fail(f"{name}: expected shape {expected}, got {shape}", hint)


def check_close(
    actual: Any, expected: Any, name: str, rtol: float = 1e-5, atol: float = 1e-6, hint: str | None = None
) -> None:
    """Fail unless the numbers agree within tolerance; reports the worst difference."""
    actual_array = np.asarray(actual, dtype=np.float64)
    expected_array = np.asarray(expected, dtype=np.float64)
    if actual_array.shape != expected_array.shape:
        _fail(f"{name}: expected shape {expected_array.shape}, got {actual_array.shape}", hint)
    if not np.allclose(actual_array, expected_array, rtol=rtol, atol=atol):
        worst = float(np.max(np.abs(actual_array - expected_array)))
        shown = expected_array if expected_array.size <= 6 else f"an array of shape {expected_array.shape}"
        _fail(f"{name}: expected {shown} (within rtol={rtol}, atol={atol}); largest difference {worst:.3g}", hint)


def check_between(value: float, low: float, high: float, name: str, hint: str | None = None) -> None:
    """Fail unless low <= value <= high (for measured numbers that vary by machine)."""
    if not isinstance(value, int | float | np.number) or not (low <= value <= high):
        _fail(f"{name}: expected a number between {low} and {high}, got {value!r}", hint)


def check_keys(mapping: Any, required: Iterable[str], name: str, hint: str | None = None) -> None:
    """Fail unless `mapping` is a dict holding every required key."""
    check_type(mapping, Mapping, name, hint)
    missing = [key for key in required if key not in mapping]
    if missing:
        _fail(f"{name} is missing the key(s) {missing}; it has {sorted(mapping)}", hint)


def check_raises(function: Any, exception: type[BaseException], name: str, hint: str | None = None) -> None:
    """Fail unless calling `function()` raises `exception` (for input-validation exercises)."""
    try:
        function()
    except exception:
        return
    except Exception as error:  # reported to the student, not swallowed
        _fail(f"{name}: expected {exception.__name__}, but it raised {type(error).__name__}: {error}", hint)
    _fail(f"{name}: expected {exception.__name__}, but nothing was raised", hint)


def _same(actual: Any, expected: Any, rtol: float, atol: float) -> bool:
    """Equal, with a tolerance for numbers and arrays (tensors included, through numpy)."""
    if isinstance(expected, str | bytes | bool | type(None)) or isinstance(actual, str | bytes):
        return type(actual) is type(expected) and actual == expected
    try:
        actual_array = np.asarray(actual, dtype=np.float64)
        expected_array = np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return actual == expected
    return actual_array.shape == expected_array.shape and bool(
        np.allclose(actual_array, expected_array, rtol=rtol, atol=atol)
    )


def check_answer(
    actual: Any,
    expected: Any,
    name: str,
    mistakes: Iterable[tuple[Any, str]] = (),
    hint: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> None:
    """Fail without printing `expected`: for a value the student must compute, not copy from the message.

    `mistakes` pairs the wrong answers students commonly give (the mean where the median belongs,
    a reshape where a transpose belongs) with what went wrong; a match is named in the message.
    """
    if _same(actual, expected, rtol, atol):
        return
    for wrong, diagnosis in mistakes:
        if _same(actual, wrong, rtol, atol):
            _fail(f"{name} is not right: {diagnosis}", hint)
    shown = f"{actual!r:.80}" if np.size(actual) <= 6 else f"an array of shape {np.shape(actual)}"
    _fail(f"{name} is not right (got {shown})", hint)

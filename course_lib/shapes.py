"""Checks of the shapes and sizes a caller passes in, with messages that say what was expected.

The benchmark (course_lib.bench) and the memory estimator (course_lib.memory) take the same
per-example input shape and batch sizes; both check them here, so both explain a mistake the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from course_lib.errors import CourseError


def check_input_shape(model: Any, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Check a per-example `input_shape` (no batch dimension) against what the model declares.

    Catching the mismatch here gives one clear message instead of an error from deep inside a
    convolution. Models that declare no input (unbuilt subclassed models) are not checked.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise CourseError(
            f"input_shape must be a tuple of positive integers without the batch dimension, "
            f"e.g. (224, 224, 3); got {input_shape!r}"
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise CourseError(
            f"input_shape must be a non-empty tuple of positive integers without the batch "
            f"dimension, e.g. (224, 224, 3); got {input_shape!r}"
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return shape  # nothing declared: the first call will tell
    if not inputs:
        return shape
    if len(inputs) != 1:
        raise CourseError(
            f"the benchmark feeds one input tensor, but this model has {len(inputs)} inputs: "
            "wrap it in a function of one tensor and use time_callable instead"
        )
    expected = tuple(inputs[0].shape)[1:]
    compatible = len(expected) == len(shape) and all(e is None or e == g for e, g in zip(expected, shape, strict=True))
    if not compatible:
        raise CourseError(
            f"input shape mismatch: the model expects {_shape_text(expected)} per example "
            f"(batch shape {_shape_text(tuple(inputs[0].shape))}), got {shape}. Pass input_shape "
            "without the batch dimension, channels last (NHWC)."
        )
    return shape


def check_batch_size(batch_size: int) -> None:
    """A batch size is a positive integer (numpy integers too, booleans not)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise CourseError(f"batch_size must be a positive integer, got {batch_size!r}")


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")

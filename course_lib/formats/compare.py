"""Compare the formats on one model: size on disk, save and load time, and output drift; a table and a plot."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from course_lib.errors import CourseError, first_line
from course_lib.formats.names import ALL_FORMATS, DEFAULT_FILE_NAMES, TFLITE_INT8, normalize_format
from course_lib.formats.save_load import is_keras_model, load, save
from course_lib.units import human_size


@dataclass(frozen=True)
class FormatResult:
    """One row of `compare`: a format's size, save and load time, and output drift from the Keras model."""

    format: str
    size_bytes: int
    save_seconds: float
    load_seconds: float
    max_abs_diff: float
    path: Path


def compare(
    model: Any,
    sample_input: np.ndarray,
    formats: Sequence[str] = ALL_FORMATS,
    workdir: str | os.PathLike[str] | None = None,
    representative_data: Any = None,
) -> list[FormatResult]:
    """Save `model` in each format, load it back, and measure: one row per format.

    `max_abs_diff` is the largest |output - Keras output| on `sample_input`. Int8 calibrates on
    `representative_data`, or on `sample_input` when none is given. Without `workdir` the files go to
    a temporary directory that is deleted afterwards (the rows' paths then no longer exist).
    """
    chosen = [normalize_format(fmt) for fmt in formats]
    if not chosen:
        raise CourseError(f"formats is empty: pass some of {', '.join(ALL_FORMATS)}")
    if not is_keras_model(model):
        raise CourseError(f"compare needs a keras.Model, got {type(model).__name__}")
    sample = np.asarray(sample_input, dtype=np.float32)
    try:
        reference = np.asarray(model(sample, training=False), dtype=np.float32)
    except Exception as error:
        raise CourseError(
            f"the model rejects sample_input of shape {sample.shape} ({first_line(error)}): "
            "pass a batch shaped like the model's input, batch dimension first"
        ) from error
    calibration = representative_data if representative_data is not None else sample
    with contextlib.ExitStack() as stack:
        folder = Path(workdir) if workdir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        rows = []
        for fmt in chosen:
            artifact = save(model, folder / DEFAULT_FILE_NAMES[fmt], fmt, calibration if fmt == TFLITE_INT8 else None)
            start = time.perf_counter()
            predictor = load(artifact.path, fmt)
            load_seconds = time.perf_counter() - start
            output = predictor(sample)
            rows.append(
                FormatResult(
                    format=fmt,
                    size_bytes=artifact.size_bytes,
                    save_seconds=artifact.save_seconds,
                    load_seconds=load_seconds,
                    max_abs_diff=float(np.max(np.abs(output - reference))),
                    path=artifact.path,
                )
            )
    return rows


def format_table(rows: Iterable[FormatResult]) -> str:
    """The rows of `compare` as a Markdown table (no pandas needed): print it or show it with Markdown()."""
    lines = [
        "| format | size (bytes) | size | save (s) | load (s) | max abs diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {row.format} | {row.size_bytes:,} | {human_size(row.size_bytes)} | {row.save_seconds:.3f} "
        f"| {row.load_seconds:.3f} | {row.max_abs_diff:.3g} |"
        for row in rows
    )
    return "\n".join(lines)


def plot_sizes(rows: Sequence[FormatResult], ax: Any = None) -> Any:
    """A horizontal bar chart of size on disk per format; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    created = ax is None
    if created:
        _figure, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    largest = max((row.size_bytes for row in rows), default=0)
    unit, divisor = ("MiB", 1024**2) if largest >= 10 * 1024**2 else ("KiB", 1024)
    bars = ax.barh([row.format for row in rows], [row.size_bytes / divisor for row in rows], color="tab:blue")
    ax.bar_label(bars, labels=[human_size(row.size_bytes) for row in rows], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel(f"size on disk ({unit})")
    ax.set_title("One model, saved in each format")
    ax.margins(x=0.2)
    if created:
        ax.figure.tight_layout()
    return ax

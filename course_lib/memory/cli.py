"""`python -m course_lib.memory`: the estimate next to the lecture's rule, and optionally a measurement."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from course_lib.bench import MODEL_NAMES, build_benchmark_model
from course_lib.errors import CourseError
from course_lib.memory.estimate import OPTIMIZER_SLOTS, estimate_memory, lecture_rule
from course_lib.memory.measure import PeakMeasurement, measure_peak
from course_lib.units import MIB


def _measure(model: Any, input_shape: tuple[int, ...], batch_size: int) -> dict[str, PeakMeasurement]:
    """Peak growth for one compiled call and one eager call, each warmed up first (GPU:0 if any)."""
    import tensorflow as tf

    device = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"

    batch = np.zeros((batch_size, *input_shape), dtype=np.float32)
    compiled = tf.function(lambda x: model(x, training=False))
    results: dict[str, PeakMeasurement] = {}
    for label, run in (
        ("function", lambda: compiled(tf.constant(batch))),
        ("eager", lambda: model(tf.constant(batch), training=False)),
    ):
        run()
        results[label] = measure_peak(run, device=device)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print the estimate next to the lecture's rule, and optionally a measurement on CPU:0."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.memory", description=main.__doc__)
    parser.add_argument("--model", choices=MODEL_NAMES, default="tiny-cnn")
    parser.add_argument("--batch-sizes", default="1,8,32", help="comma-separated, e.g. 1,8,32")
    parser.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZER_SLOTS))
    parser.add_argument("--measure", action="store_true", help="measure peak growth on CPU:0 (or GPU:0 if present)")
    args = parser.parse_args(argv)
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        parser.exit(2, f"error: --batch-sizes must be comma-separated integers, got {args.batch_sizes!r}\n")
    model, input_shape = build_benchmark_model(args.model)
    header = ("batch", "lecture total MiB", "inference MiB", "peak act MiB", "all act MiB", "training MiB")
    if args.measure:
        header += ("measured fn MiB", "measured eager MiB")
    print(" | ".join(header))
    methods = set()
    for batch_size in batch_sizes:
        try:
            estimate = estimate_memory(model, batch_size, input_shape, optimizer=args.optimizer)
        except CourseError as error:
            parser.exit(2, f"error: {error}\n")
        lecture = lecture_rule(model, batch_size, input_shape)
        cells = [
            str(batch_size),
            f"{lecture['total_mb']:.1f}",
            f"{estimate.inference_bytes / MIB:.1f}",
            f"{estimate.activations_peak_inference_bytes / MIB:.1f}",
            f"{estimate.activations_total_bytes / MIB:.1f}",
            f"{estimate.training_bytes / MIB:.1f}",
        ]
        if args.measure:
            measured = _measure(model, input_shape, batch_size)
            cells += ["n/a" if m.bytes is None else f"{m.bytes / MIB:.1f}" for m in measured.values()]
            methods |= {f"{m.method} on {m.device}: {m.note}" for m in measured.values()}
        print(" | ".join(cells))
    for method in sorted(methods):
        print(f"measured as {method}")
    print(estimate.summary())
    return 0

"""Inference latency and throughput over batch sizes, measured so that the numbers mean something.

The lecture times one `model.predict` call after one warmup. One sample says nothing about spread,
and on Keras 3 `predict` pays a fixed per-call setup, whatever the model, that a served model never
needs (measured in docs/benchmarks.md, "Inference benchmark").
Here every (method, batch size) pair gets warmup calls, then `repeats` timed calls, summarised by
p50/p95/mean, so `predict`, a direct `model(x)` call and a compiled `tf.function` can be compared.

`time_callable` and `summarize` are the building blocks: notebooks reuse them to time anything
(a LiteRT interpreter, a REST client). Run `python -m course_lib.bench --help` for the benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from course_lib.devices import materialize
from course_lib.errors import CourseError
from course_lib.shapes import check_input_shape

METHODS = ("predict", "call", "function", "xla")
"""What `benchmark` can time: `model.predict`, `model(x, training=False)`, a compiled `tf.function`,
and the same `tf.function` with `jit_compile=True` (XLA)."""

MODEL_NAMES = ("tiny-cnn", "resnet50", "mobilenetv2")  # tiny-cnn: 28x28x1, two hidden layers


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of a list of per-call latencies, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float


@dataclass(frozen=True)
class BenchRow:
    """One (method, batch size) measurement.

    `throughput` (items/s) is computed from the median latency: batch_size / p50, so one slow
    outlier call does not drag it down. `first_call_ms` is the first warmup call, which for the
    compiled methods includes tracing (and XLA compilation): the cost a server pays once.
    """

    method: str
    batch_size: int
    repeats: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    throughput: float
    first_call_ms: float | None = None


def percentile(samples: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) of `samples`, linearly interpolated like numpy's default."""
    if len(samples) == 0:
        raise CourseError("percentile of no samples: time at least one call (repeats >= 1)")
    if not 0 <= q <= 100:
        raise CourseError(f"percentile q must be between 0 and 100, got {q}")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def summarize(samples_ms: Sequence[float]) -> LatencySummary:
    """p50, p95, mean, min and max of latencies in milliseconds (as returned by `time_callable`)."""
    if len(samples_ms) == 0:
        raise CourseError("cannot summarize an empty list of latencies: time at least one call")
    values = np.asarray(samples_ms, dtype=np.float64)
    return LatencySummary(
        count=len(values),
        p50_ms=percentile(values, 50),
        p95_ms=percentile(values, 95),
        mean_ms=float(values.mean()),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
    )


def time_callable(fn: Callable[[], Any], warmup: int = 3, repeats: int = 20) -> list[float]:
    """Call `fn()` `warmup` times untimed, then `repeats` times timed; return each latency in ms.

    Each result goes through `materialize`, so a timed call covers the whole computation even on a
    GPU. Use a warmup of at least 1 for anything that traces or compiles on its first call.
    """
    _check_counts(warmup, repeats)
    for _ in range(warmup):
        materialize(fn())
    latencies_ms = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        materialize(fn())
        latencies_ms.append((time.perf_counter_ns() - start) / 1e6)
    return latencies_ms


def _check_counts(warmup: int, repeats: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise CourseError(f"repeats must be a positive integer (timed calls per batch size), got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise CourseError(f"warmup must be an integer >= 0 (untimed calls first), got {warmup!r}")


def _check_batch_sizes(batch_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(batch_sizes)
    if not sizes:
        raise CourseError("batch_sizes is empty: give at least one, e.g. batch_sizes=(1, 8, 32)")
    bad = [b for b in sizes if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1]
    if bad:
        raise CourseError(f"batch sizes must be positive integers, got {bad} in {sizes}")
    return tuple(int(b) for b in sizes)


def _check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    chosen = (methods,) if isinstance(methods, str) else tuple(methods)
    if not chosen:
        raise CourseError(f"methods is empty: choose from {METHODS}")
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise CourseError(f"unknown benchmark method(s) {unknown}: choose from {METHODS}")
    return chosen


def make_runner(model: Any, method: str) -> Callable[[np.ndarray], Any]:
    """A function of one input batch that runs `model` the way `method` names (see METHODS).

    The compiled runners are created once per call of this function and reused across batch
    sizes; each new batch size traces (and for XLA compiles) once, during warmup.
    """
    import tensorflow as tf

    if method == "predict":
        return lambda x: model.predict(x, batch_size=len(x), verbose=0)
    if method == "call":
        return lambda x: model(x, training=False)
    if method in ("function", "xla"):
        compiled = tf.function(lambda x: model(x, training=False), jit_compile=(method == "xla"))
        return lambda x: compiled(tf.convert_to_tensor(x))
    raise CourseError(f"unknown benchmark method {method!r}: choose from {METHODS}")


def _random_batch(batch_size: int, input_shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise CourseError(f"dtype {dtype!r} is not a numpy dtype: use e.g. 'float32' or 'uint8'") from None
    rng = np.random.default_rng(seed)
    if np.issubdtype(np_dtype, np.integer):
        return rng.integers(0, 256, size=(batch_size, *input_shape)).astype(np_dtype)
    return rng.random((batch_size, *input_shape)).astype(np_dtype)


def _run_checked(runner: Callable[[np.ndarray], Any], batch: np.ndarray, method: str) -> float:
    """First call of a runner, timed, with TensorFlow's errors turned into one clear CourseError."""
    start = time.perf_counter_ns()
    try:
        materialize(runner(batch))
    except CourseError:
        raise
    except Exception as error:  # any failure of the model on this input
        raise CourseError(
            f"the model failed on a batch of shape {batch.shape} and dtype {batch.dtype} "
            f"(method {method!r}): {type(error).__name__}: {str(error).strip().splitlines()[0]}"
        ) from error
    return (time.perf_counter_ns() - start) / 1e6


def row_from_latencies(
    method: str, batch_size: int, latencies_ms: Sequence[float], first_call_ms: float | None = None
) -> BenchRow:
    """Summarise timed calls of one batch into a BenchRow (throughput from the median)."""
    summary = summarize(latencies_ms)
    return BenchRow(
        method=method,
        batch_size=batch_size,
        repeats=summary.count,
        p50_ms=summary.p50_ms,
        p95_ms=summary.p95_ms,
        mean_ms=summary.mean_ms,
        throughput=batch_size / (summary.p50_ms / 1000.0) if summary.p50_ms > 0 else math.inf,
        first_call_ms=first_call_ms,
    )


def benchmark(
    model: Any,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 8, 32),
    methods: Sequence[str] = ("predict", "call", "function"),
    warmup: int = 3,
    repeats: int = 20,
    dtype: str = "float32",
    seed: int = 0,
) -> list[BenchRow]:
    """Time `model` on random batches for every method and batch size; one BenchRow per pair.

    Every method gets the same host (numpy) batch, as a server receives it, and every result is
    copied back to the host. Methods are interleaved per batch size so that a machine that slows
    down (other jobs, thermal limits) does not favour whichever method ran first.
    """
    sizes = _check_batch_sizes(batch_sizes)
    chosen = _check_methods(methods)
    _check_counts(warmup, repeats)
    shape = check_input_shape(model, input_shape)
    runners = {method: make_runner(model, method) for method in chosen}
    rows = []
    for batch_size in sizes:
        batch = _random_batch(batch_size, shape, dtype, seed)
        for method in chosen:
            runner = runners[method]
            first_ms = _run_checked(runner, batch, method)  # counts as a warmup call, or the first repeat
            if warmup:
                latencies = time_callable(lambda r=runner, b=batch: r(b), warmup=warmup - 1, repeats=repeats)
                rows.append(row_from_latencies(method, batch_size, latencies, first_ms))
            else:
                rest = time_callable(lambda r=runner, b=batch: r(b), 0, repeats - 1) if repeats > 1 else []
                rows.append(row_from_latencies(method, batch_size, [first_ms, *rest]))
    return rows


def lecture_benchmark(
    model: Any,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 8, 16, 32, 64),
    dtype: str = "float32",
    seed: int = 0,
) -> list[BenchRow]:
    """The lecture's method, kept to compare against: one warmup `predict`, then one timed `predict`.

    One sample per batch size has no spread (p50 = p95 = mean) and includes `predict`'s fixed
    per-call overhead, which dominates small batches on Keras 3. Rows have method 'lecture'.
    """
    sizes = _check_batch_sizes(batch_sizes)
    shape = check_input_shape(model, input_shape)
    rows = []
    for batch_size in sizes:
        batch = _random_batch(batch_size, shape, dtype, seed)
        _run_checked(lambda x: model.predict(x, verbose=0), batch, "lecture")  # the lecture's warmup
        start = time.perf_counter()
        model.predict(batch, verbose=0)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        rows.append(row_from_latencies("lecture", batch_size, [elapsed_ms]))
    return rows


def speedup(rows: Sequence[BenchRow], method: str, baseline: str = "predict", batch_size: int = 1) -> float:
    """How many times faster `method` is than `baseline` at `batch_size`, by median latency."""
    by_key = {(r.method, r.batch_size): r for r in rows}
    missing = [m for m in (method, baseline) if (m, batch_size) not in by_key]
    if missing:
        have = sorted({(r.method, r.batch_size) for r in rows})
        raise CourseError(f"no row for {missing} at batch size {batch_size}; rows cover {have}")
    return by_key[(baseline, batch_size)].p50_ms / by_key[(method, batch_size)].p50_ms


_COLUMNS = ("method", "batch", "repeats", "p50 ms", "p95 ms", "mean ms", "items/s")


def _cells(row: BenchRow) -> tuple[str, ...]:
    return (
        row.method,
        str(row.batch_size),
        str(row.repeats),
        f"{row.p50_ms:.2f}",
        f"{row.p95_ms:.2f}",
        f"{row.mean_ms:.2f}",
        f"{row.throughput:.1f}",
    )


def format_table(rows: Sequence[BenchRow], style: str = "text") -> str:
    """The rows as a table: style 'text' (aligned columns, for a terminal) or 'markdown'."""
    if style not in ("text", "markdown"):
        raise CourseError(f"table style must be 'text' or 'markdown', got {style!r}")
    body = [_cells(r) for r in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * 6) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(c) for c in column) for column in zip(_COLUMNS, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]).rstrip()

    return "\n".join([line(_COLUMNS), line(["-" * w for w in widths])] + [line(c) for c in body])


def plot_throughput(
    rows: Sequence[BenchRow], title: str = "Throughput vs batch size", ax: Any = None, log_y: bool | None = None
) -> Any:
    """Throughput (items/s) against batch size, one line per method; returns the matplotlib Figure.

    The figure is not shown (no plt.show()): a notebook displays it as the cell's value, a script
    saves it with `fig.savefig(path)`. Pass `ax` to draw into an existing axes. The y axis is
    logarithmic when throughputs span more than 30x (log_y=None), so `predict` stays visible.
    """
    if not rows:
        raise CourseError("nothing to plot: benchmark() returned no rows")
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    methods = list(dict.fromkeys(r.method for r in rows))
    for method in methods:
        points = sorted((r.batch_size, r.throughput) for r in rows if r.method == method)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method)
    ax.set_xscale("log", base=2)
    sizes = sorted({r.batch_size for r in rows})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    values = [r.throughput for r in rows if 0 < r.throughput < math.inf]
    if log_y if log_y is not None else (values and max(values) / min(values) > 30):
        ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (items/s, from p50 latency)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def machine_description() -> dict[str, Any]:
    """What the numbers were measured on: CPU, core count, TensorFlow version, GPUs."""
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "gpus": gpus,
    }


def build_benchmark_model(name: str) -> tuple[Any, tuple[int, ...]]:
    """A model to benchmark by name, with its per-example input shape; built offline.

    ResNet50 and MobileNetV2 get random weights (weights=None): timing and memory do not depend on
    the values of the weights, and nothing is downloaded.
    """
    import keras

    if name == "tiny-cnn":
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Conv2D(8, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(10),
            ],
            name="tiny_cnn",
        )
        return model, (28, 28, 1)
    # Keras documents weights=None (random initialisation); pyright infers `str` from the default "imagenet"
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None), (224, 224, 3)  # pyright: ignore[reportArgumentType]
    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(weights=None), (224, 224, 3)  # pyright: ignore[reportArgumentType]
    raise CourseError(f"unknown model {name!r}: choose from {MODEL_NAMES}")


def _parse_int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,8,32, got {text!r}") from None


def _parse_methods(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Benchmark a model by name and print the table (and the compiled-vs-predict ratio)."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.bench", description=main.__doc__)
    parser.add_argument("--model", choices=MODEL_NAMES, default="tiny-cnn")
    parser.add_argument("--batch-sizes", type=_parse_int_list, default=[1, 8, 32])
    parser.add_argument(
        "--methods",
        type=_parse_methods,
        default=list(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (default: all)",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--lecture", action="store_true", help="also run the lecture's one-shot method")
    parser.add_argument("--out", help="write rows and machine description as JSON to this path")
    parser.add_argument("--plot", help="save the throughput plot (PNG) to this path")
    args = parser.parse_args(argv)
    try:
        model, input_shape = build_benchmark_model(args.model)
        rows = benchmark(model, input_shape, args.batch_sizes, args.methods, args.warmup, args.repeats)
        if args.lecture:
            rows += lecture_benchmark(model, input_shape, args.batch_sizes)
    except CourseError as error:
        parser.exit(2, f"error: {error}\n")
    machine = machine_description()
    print(f"model={args.model} input={input_shape} warmup={args.warmup} repeats={args.repeats}")
    print(f"machine: {machine}")
    print(format_table(rows))
    ratios = {}
    for method in ("call", "function", "xla"):
        for batch_size in args.batch_sizes:
            if {("predict", batch_size), (method, batch_size)} <= {(r.method, r.batch_size) for r in rows}:
                ratios[f"predict/{method}@{batch_size}"] = speedup(rows, method, "predict", batch_size)
    for key, ratio in ratios.items():
        print(f"p50 ratio {key}: {ratio:.2f}x")
    if args.out:
        payload = {
            "model": args.model,
            "input_shape": list(input_shape),
            "warmup": args.warmup,
            "machine": machine,
            "ratios": ratios,
            "rows": [asdict(r) for r in rows],
        }
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
    if args.plot:
        plot_throughput(rows, title=f"{args.model}: throughput vs batch size").savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

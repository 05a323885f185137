"""The GPU report: the course's performance claims measured on the machine at hand.

GPU CI (and `make gpu-report` on a lab VM) runs every notebook with QUICK=False and measures, in
this process: ResNet50 inference throughput per batch size for fp32, XLA, mixed precision and both;
the memory estimator against the allocator's measured peak; TFLite sizes and agreement with the
float model. It writes report.json and report.md, naming the device and the driver.

    python -m course_lib.dev.gpu_report [--out DIR] [--skip-notebooks]
    python -m course_lib.dev.gpu_report --dry-run      # small sizes on CPU: the same report format

Weights are random unless a prefetched cache exists: throughput and memory do not depend on weight
values, and TFLite agreement is measured against the same float model either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PRECISIONS = (
    ("fp32", "float32", False),
    ("fp32+xla", "float32", True),
    ("mixed", "mixed_float16", False),
    ("mixed+xla", "mixed_float16", True),
)


@dataclass
class Plan:
    """Sizes for a real GPU run and for the CPU dry run."""

    model: str
    input_shape: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    memory_batch_sizes: tuple[int, ...]
    warmup: int
    repeats: int
    tflite_model: str


FULL = Plan("resnet50", (224, 224, 3), (1, 8, 32, 64, 128, 256), (1, 8, 32, 64), 5, 30, "mobilenetv2")
DRY_RUN = Plan("dry-run-cnn", (32, 32, 3), (1, 8), (1, 8), 1, 3, "dry-run-cnn")


def build_model(name: str, input_shape: tuple[int, ...]):
    """A model of the named architecture under the current Keras dtype policy (random weights)."""
    import keras

    # Keras documents weights=None (random initialisation); pyright infers `str` from the default "imagenet"
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None, input_shape=input_shape)  # pyright: ignore[reportArgumentType]
    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(
            weights=None,  # pyright: ignore[reportArgumentType]
            input_shape=input_shape,
        )
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="dry_run_cnn")


def device_section() -> dict:
    from course_lib import environment

    report = environment.collect()
    return {
        "summary": report.one_line(),
        "gpus": report.gpus,
        "driver": report.nvidia_smi or "none",
        "cpu": report.cpu_model,
        "cpu_features": [name for name, ok in report.cpu_features.items() if ok],
        "onednn": report.onednn,
        "tensorflow": report.tensorflow,
        "build": report.build,
    }


def throughput_section(plan: Plan) -> list[dict]:
    """Images/s per precision and batch size, through a compiled function on device-resident input."""
    import keras
    import tensorflow as tf

    from course_lib.bench import summarize, time_callable

    rows = []
    for label, policy, xla in PRECISIONS:
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = build_model(plan.model, plan.input_shape)
            run = tf.function(lambda x, model=model: model(x, training=False), jit_compile=xla)
            for batch_size in plan.batch_sizes:
                batch = tf.random.uniform((batch_size, *plan.input_shape), dtype=tf.float32)
                start = time.perf_counter()
                run(batch).numpy()
                first_call_ms = (time.perf_counter() - start) * 1000
                summary = summarize(time_callable(lambda run=run, batch=batch: run(batch), plan.warmup, plan.repeats))
                rows.append(
                    {
                        "precision": label,
                        "batch_size": batch_size,
                        "p50_ms": round(summary.p50_ms, 3),
                        "p95_ms": round(summary.p95_ms, 3),
                        "first_call_ms": round(first_call_ms, 1),
                        "images_per_s": round(batch_size / summary.p50_ms * 1000, 1),
                    }
                )
        finally:
            keras.mixed_precision.set_global_policy("float32")
    return rows


def memory_section(plan: Plan) -> list[dict]:
    """The estimator's inference figure against the measured peak, per batch size, compiled and eager.

    Measured = the weights and the input batch (tensors of known size, resident before the call)
    plus the peak growth `measure_peak` saw during one warmed-up call. `method` says how it saw it:
    TensorFlow's allocator (GPUs, CPUs with oneDNN on) or the process's resident memory (CPUs
    without oneDNN, e.g. AVX2-only ones), which reads higher than the tensors alone.
    An eager call keeps every layer's output until it returns (MemoryEstimate.eager_inference_bytes).
    """
    import tensorflow as tf

    from course_lib.memory import estimate_memory, lecture_rule, measure_peak

    device = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"
    model = build_model(plan.model, plan.input_shape)
    run = tf.function(lambda x: model(x, training=False))
    rows = []
    for batch_size in plan.memory_batch_sizes:
        estimate = estimate_memory(model, batch_size)
        with tf.device(device):
            batch = tf.zeros((batch_size, *plan.input_shape))
        resident = estimate.param_bytes + estimate.input_bytes
        run(batch)
        compiled = measure_peak(lambda batch=batch: run(batch), device=device)
        model(batch, training=False)  # warm up the eager path too
        eager = measure_peak(lambda batch=batch: model(batch, training=False), device=device)
        measured = None if compiled.bytes is None else resident + compiled.bytes
        eager_measured = None if eager.bytes is None else resident + eager.bytes
        estimated = estimate.inference_bytes
        lecture_mb = lecture_rule(model, batch_size, plan.input_shape)["total_mb"]
        rows.append(
            {
                "device": device,
                "method": compiled.method,
                "batch_size": batch_size,
                "estimate_mib": round(estimated / 2**20, 1),
                "lecture_rule_mib": round(lecture_mb, 1),
                "measured_peak_mib": None if measured is None else round(measured / 2**20, 1),
                "estimate_error_pct": None if not measured else round(100 * (estimated - measured) / measured, 1),
                "lecture_error_pct": None
                if not measured
                else round(100 * (lecture_mb * 2**20 - measured) / measured, 1),
                "eager_estimate_mib": round(estimate.eager_inference_bytes / 2**20, 1),
                "eager_measured_peak_mib": None if eager_measured is None else round(eager_measured / 2**20, 1),
                "eager_error_pct": None
                if not eager_measured
                else round(100 * (estimate.eager_inference_bytes - eager_measured) / eager_measured, 1),
            }
        )
    return rows


def tflite_section(plan: Plan, workdir: Path) -> list[dict]:
    """Size, max |diff| and top-1 agreement with the float model for each TFLite variant."""
    from course_lib import formats

    model = build_model(plan.tflite_model, plan.input_shape)
    rng = np.random.default_rng(0)
    sample = rng.uniform(0, 1, (16, *plan.input_shape)).astype(np.float32)
    reference = np.asarray(model(sample, training=False)).argmax(axis=-1)
    rows = []
    for row in formats.compare(
        model, sample, formats=("keras", "tflite", "tflite-dynamic", "tflite-int8"), workdir=workdir
    ):
        predicted = formats.load(row.path, row.format)(sample).argmax(axis=-1)
        rows.append(
            {
                "format": row.format,
                "size_mib": round(row.size_bytes / 2**20, 2),
                "max_abs_diff": float(f"{row.max_abs_diff:.3g}"),
                "top1_agreement": float(np.mean(predicted == reference)),
            }
        )
    return rows


def markdown(report: dict) -> str:
    def table(rows: list[dict]) -> list[str]:
        if not rows:
            return ["(none)"]
        keys = list(rows[0])
        return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)] + [
            "| " + " | ".join("-" if r[k] is None else str(r[k]) for k in keys) + " |" for r in rows
        ]

    device = report["device"]
    lines = [
        f"# Course performance report ({'dry run, CPU sizes' if report['dry_run'] else 'full run'})",
        "",
        f"- Device: {device['summary']}",
        f"- NVIDIA driver: {device['driver']}",
        (
            f"- CPU: {device['cpu']} ({', '.join(device['cpu_features']) or 'no listed features'}); "
            f"oneDNN {'on' if device['onednn'] else 'off' if device['onednn'] is False else 'unknown'}"
        ),
        (
            f"- Measured: {report['measured_at']}; model `{report['plan']['model']}`, "
            f"input {tuple(report['plan']['input_shape'])}, random weights"
        ),
        "",
        "## Inference throughput (compiled function, input on device)",
        *table(report["throughput"]),
        "",
        "## Memory: estimate vs measured peak (weights + input + peak activations; eager: every activation)",
        *table(report["memory"]),
        "",
        "## TFLite: size and agreement with the float model",
        *table(report["tflite"]),
        "",
        "## Notebooks",
        *table(report["notebooks"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.gpu_report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: a temp dir)")
    parser.add_argument("--dry-run", action="store_true", help="small sizes on CPU, same report format")
    parser.add_argument("--skip-notebooks", action="store_true", help="measure only, run no notebook")
    args = parser.parse_args(argv)
    plan = DRY_RUN if args.dry_run else FULL
    out = args.out or Path(tempfile.mkdtemp(prefix="course-report-"))
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "dry_run": args.dry_run,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "plan": plan.__dict__,
        "device": device_section(),
    }
    print(report["device"]["summary"], flush=True)
    report["throughput"] = throughput_section(plan)
    report["memory"] = memory_section(plan)
    with tempfile.TemporaryDirectory() as workdir:
        report["tflite"] = tflite_section(plan, Path(workdir))
    report["notebooks"] = []
    if not args.skip_notebooks:
        from course_lib.dev.run_notebooks import run_notebook
        from course_lib.paths import assignment_ids

        executed = out / "notebooks"
        executed.mkdir(exist_ok=True)
        for assignment in assignment_ids():
            run = run_notebook(assignment, executed, {"QUICK": args.dry_run})
            report["notebooks"].append(
                {
                    "notebook": assignment,
                    "ok": run.ok,
                    "seconds": run.seconds,
                    "kernel_peak_rss_mib": run.kernel_peak_rss_mib,
                    "error": run.error.splitlines()[-1] if run.error else "",
                }
            )
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "report.md").write_text(markdown(report))
    print(f"report: {out / 'report.md'}")
    failed = [n["notebook"] for n in report["notebooks"] if not n["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

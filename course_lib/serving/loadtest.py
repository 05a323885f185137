"""Bounded load tests of the model server with locust, on 127.0.0.1 only.

    python -m course_lib.serving.loadtest --scenario tiny-dense --protocol rest --users 16 --run-time 20
    python -m course_lib.serving.loadtest --scenario image --protocol grpc --users 32 --batching
    python -m course_lib.serving.loadtest --suite      # the runs recorded in docs/benchmarks.md
    python -m course_lib.serving.loadtest --model-timing --scenario image   # the model alone, by batch size

Each run exports a model into a temporary folder, starts the server with `serve()`, runs locust
headless (fixed users, a run time and a request cap) against it, reads the statistics locust
writes when it quits, and stops the server. Numbers depend on the machine and on whatever else runs on it: say which
when you report them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from course_lib.errors import CourseError

if TYPE_CHECKING:  # TensorFlow loads only when a benchmark runs
    from course_lib.serving.servable import TensorSpecInfo

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
MODEL_NAME = "bench"


@dataclass
class LatencySummary:
    """locust's numbers for a group of requests: throughput, failures, latency percentiles (ms)."""

    requests: int
    failures: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @staticmethod
    def fields_from_locust(entry: dict) -> dict:
        """The fields, from one entry of the summary locustfile.py writes (`_stats_dict`)."""
        return {
            "requests": int(entry["requests"]),
            "failures": int(entry["failures"]),
            "requests_per_s": float(entry["rps"]),
            "p50_ms": float(entry["p50"]),
            "p95_ms": float(entry["p95"]),
            "p99_ms": float(entry["p99"]),
            "max_ms": float(entry["max"]),
        }


@dataclass(kw_only=True)
class LoadResult(LatencySummary):
    """One locust run: its latency summary, what ran, and how the server batched."""

    scenario: str
    protocol: str
    batching: bool
    users: int
    server_batching: str = ""
    batching_parameters: str = ""

    def row(self) -> str:
        batching = self.batching_parameters if self.batching else "off"
        return (
            f"| {self.scenario} | {self.protocol} | {batching} | {self.users} | "
            f"{self.requests} | {self.failures} | {self.requests_per_s:.0f} | {self.p50_ms:.0f} | "
            f"{self.p95_ms:.0f} | {self.p99_ms:.0f} | {self.server_batching or '-'} |"
        )


TABLE_HEADER = (
    "| scenario | protocol | batching | users | requests | failures | req/s | p50 ms | p95 ms | "
    "p99 ms | server batches |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def build_model(scenario: str, image_model: str = "mobilenet_v2"):
    """The benchmark models: `tiny-dense` (4 -> 16 -> 2 dense) or `image` (224x224x3 CNN)."""
    import keras

    keras.utils.set_random_seed(0)
    if scenario == "tiny-dense":
        inputs = keras.Input((4,), name="x")
        hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
        return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probs")(hidden))
    if scenario == "image":
        if image_model == "mobilenet_v2":
            # Keras documents weights=None (random init); pyright infers `str` from the default "imagenet"
            return keras.applications.MobileNetV2(
                weights=None,  # pyright: ignore[reportArgumentType]
                input_shape=(224, 224, 3),
                classes=10,
            )
        inputs = keras.Input((224, 224, 3), name="image")
        x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
        x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
        x = keras.layers.Conv2D(64, 3, strides=2, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(x))
    raise CourseError(f"Unknown scenario {scenario!r}: use tiny-dense or image")


def _example_shape(spec: TensorSpecInfo, batch: int) -> tuple[int, ...]:
    """The shape of `batch` examples for a signature input (1 where a dimension is free)."""
    if spec.shape is None:
        raise CourseError(f"Input {spec.alias!r} has an unknown rank: the load test needs a fixed input shape")
    return (batch, *tuple(d or 1 for d in spec.shape[1:]))


def write_payload(model_dir: Path, protocol: str, out: Path, model_name: str = MODEL_NAME) -> str:
    """One single-example request for the exported model; returns its input name."""
    return write_payloads(model_dir, {protocol: out}, model_name)


def write_payloads(model_dir: Path, outputs: dict[str, Path], model_name: str = MODEL_NAME) -> str:
    """The same single-example request for each protocol in `outputs` ("rest": JSON, "grpc": a
    serialized PredictRequest), reading the model's signature once; returns its input name."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from course_lib.serving.servable import ServableVersion

    signature = ServableVersion(model_name, 1, model_dir).signatures["serving_default"]
    ((name, spec),) = signature.inputs.items()
    example = np.random.default_rng(0).random(_example_shape(spec, 1), dtype=np.float32)
    for protocol, out in outputs.items():
        if protocol == "rest":
            out.write_text(json.dumps({"instances": example.round(4).tolist()}))
        else:
            # a generated proto class, built at import: pyright cannot see it
            request = predict_pb2.PredictRequest()  # pyright: ignore[reportAttributeAccessIssue]
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            request.inputs[name].CopyFrom(tf.make_tensor_proto(example))
            out.write_bytes(request.SerializeToString())
    return name


def run_locust(
    *,
    protocol: str,
    rest_url: str,
    grpc_target: str | None,
    payload: Path | None,
    users: int,
    run_time_s: float,
    max_requests: int,
    work_dir: Path,
    processes: int = 1,
    model_name: str = MODEL_NAME,
    mix: list[dict] | None = None,
    label: str = "",
) -> dict:
    """Run locust headless against 127.0.0.1, bounded by time and request count.

    `mix` runs several kinds of users at once (see locustfile.py's LOADTEST_MIX); `users` is then
    ignored for their sum, and the statistics have a `by_name` part. `label` names the statistics
    file, so that several locust processes can share `work_dir` at the same time.
    """
    for address in (rest_url, grpc_target or "127.0.0.1"):
        host = address.split("://", 1)[-1].rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            raise CourseError(f"Load tests run against 127.0.0.1 only, not {address}")
    summary = work_dir / f"locust-{label or protocol}.json"
    summary.unlink(missing_ok=True)
    env = dict(
        os.environ,
        LOADTEST_SUMMARY=str(summary),
        LOADTEST_PROTOCOL=protocol,
        LOADTEST_PAYLOAD=str(payload or ""),
        LOADTEST_PATH=f"/v1/models/{model_name}:predict",
        LOADTEST_GRPC_TARGET=grpc_target or "",
        LOADTEST_MAX_REQUESTS=str(max(1, max_requests // processes)),
        LOADTEST_MIX=json.dumps(mix) if mix else "",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    if mix:
        users = sum(int(entry["users"]) for entry in mix)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{max(1, round(run_time_s))}s",
        "--host",
        rest_url,
        "--only-summary",
        "--stop-timeout",
        "5",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if processes > 1:
        command += ["--processes", str(processes)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=run_time_s + 120)
    if result.returncode != 0:
        raise CourseError(f"locust exited with {result.returncode}:\n{result.stderr[-2000:]}")
    if not summary.exists():
        raise CourseError(f"locust wrote no statistics:\n{result.stderr[-2000:]}")
    stats = json.loads(summary.read_text())
    if not stats["requests"]:
        raise CourseError(f"locust sent no request in {run_time_s} s:\n{result.stderr[-2000:]}")
    return stats


def write_batching_file(path: Path, max_batch_size: int, timeout_micros: int, threads: int) -> Path:
    path.write_text(
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {timeout_micros} }}\n"
        f"max_enqueued_batches {{ value: 1000 }}\n"
        f"num_batch_threads {{ value: {threads} }}\n"
    )
    return path


def run_load_test(
    scenario: str,
    protocol: str,
    *,
    users: int,
    run_time_s: int,
    max_requests: int,
    batching: bool,
    max_batch_size: int = 32,
    batch_timeout_micros: int = 0,
    batch_threads: int = 1,
    image_model: str = "mobilenet_v2",
    processes: int = 1,
    use_real_server: bool | None = None,
) -> LoadResult:
    """Export the scenario's model, serve it, load it with locust, stop it; returns the numbers."""
    from course_lib.serving.export import export_model
    from course_lib.serving.launcher import serve

    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        work = Path(tmp)
        model_dir = export_model(
            build_model(scenario, image_model), work / MODEL_NAME, 1, classify=False, regress=False
        )
        payload = work / ("payload.json" if protocol == "rest" else "payload.pb")
        write_payload(model_dir, protocol, payload)
        batching_file = (
            write_batching_file(work / "batching.config", max_batch_size, batch_timeout_micros, batch_threads)
            if batching
            else None
        )
        server = serve(
            MODEL_NAME,
            work / MODEL_NAME,
            enable_batching=batching,
            batching_parameters_file=batching_file,
            use_real_server=use_real_server,
            log_path=work / "server.log",
            timeout=180,
        )
        try:
            stats = run_locust(
                protocol=protocol,
                rest_url=server.rest_url,
                grpc_target=server.grpc_target,
                payload=payload,
                users=users,
                run_time_s=run_time_s,
                max_requests=max_requests,
                work_dir=work,
                processes=processes,
            )
        finally:
            server.stop()
        match = re.search(r"Batching: (.+)$", server.log_tail(20), re.MULTILINE)
        label = f"{scenario} ({image_model})" if scenario == "image" else scenario
        return LoadResult(
            scenario=label,
            protocol=protocol,
            batching=batching,
            users=users,
            **LatencySummary.fields_from_locust(stats),
            server_batching=match.group(1) if match else "",
            batching_parameters=f"max {max_batch_size}, {batch_timeout_micros} us, "
            f"{batch_threads} thread{'s' if batch_threads > 1 else ''}",
        )


def time_model_batches(
    scenario: str, image_model: str, batch_sizes: list[int], repeats: int = 5
) -> list[tuple[int, float]]:
    """Examples per second of the bare signature function at each batch size (no server, no HTTP).

    Server-side batching can only win what the model itself gains from bigger batches, plus the
    per-request overhead it saves: this says how much the first part is on this machine.
    """
    import time

    import numpy as np

    from course_lib.serving.export import export_model
    from course_lib.serving.servable import ServableVersion

    with tempfile.TemporaryDirectory(prefix="model-timing-") as tmp:
        path = export_model(
            build_model(scenario, image_model), Path(tmp) / MODEL_NAME, 1, classify=False, regress=False
        )
        model = ServableVersion(MODEL_NAME, 1, path)
        signature = model.signatures["serving_default"]
        ((name, spec),) = signature.inputs.items()
        results = []
        for batch in batch_sizes:
            x = np.random.default_rng(0).random(_example_shape(spec, batch), dtype=np.float32)
            model.run(signature, {name: x}, tuple(signature.outputs))  # warm-up
            started = time.perf_counter()
            for _ in range(repeats):
                model.run(signature, {name: x}, tuple(signature.outputs))
            results.append((batch, batch * repeats / (time.perf_counter() - started)))
        return results


@dataclass(frozen=True)
class SuiteRun:
    """One line of the benchmark suite."""

    scenario: str
    protocol: str
    users: int
    batching: bool
    image_model: str = "mobilenet_v2"
    max_batch_size: int = 32
    batch_threads: int = 1


SUITE = [
    SuiteRun("tiny-dense", "rest", 16, False),
    SuiteRun("tiny-dense", "rest", 16, True),
    SuiteRun("tiny-dense", "grpc", 16, False),
    SuiteRun("tiny-dense", "grpc", 16, True),
    SuiteRun("image", "rest", 32, False, "small_cnn"),
    SuiteRun("image", "grpc", 32, False, "small_cnn"),
    SuiteRun("image", "grpc", 32, True, "small_cnn", max_batch_size=8, batch_threads=2),
    SuiteRun("image", "grpc", 32, False, "mobilenet_v2"),
    SuiteRun("image", "grpc", 32, True, "mobilenet_v2", max_batch_size=8, batch_threads=2),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.serving.loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", choices=["tiny-dense", "image"], default="tiny-dense")
    parser.add_argument("--protocol", choices=["rest", "grpc"], default="rest")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--run-time", type=int, default=20, help="seconds per run")
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop a run after this many requests")
    parser.add_argument("--batching", action="store_true", help="start the server with --enable_batching")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=0)
    parser.add_argument("--batch-threads", type=int, default=1)
    parser.add_argument("--image-model", choices=["mobilenet_v2", "small_cnn"], default="mobilenet_v2")
    parser.add_argument("--processes", type=int, default=1, help="locust processes")
    parser.add_argument("--suite", action="store_true", help="run the benchmark suite of docs/benchmarks.md")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--model-timing",
        action="store_true",
        help="only time the model's signature at batch sizes 1, 8, 32 (no server)",
    )
    args = parser.parse_args(argv)
    if args.model_timing:
        print("| model | batch size | examples/s |\n|---|---|---|")
        label = f"{args.scenario} ({args.image_model})" if args.scenario == "image" else args.scenario
        for batch, rate in time_model_batches(args.scenario, args.image_model, [1, 8, 32]):
            print(f"| {label} | {batch} | {rate:.0f} |", flush=True)
        return 0
    if args.users < 1 or args.run_time < 1 or args.max_requests < 1:
        parser.error("--users, --run-time and --max-requests must be positive")
    runs = (
        SUITE
        if args.suite
        else [
            SuiteRun(
                args.scenario,
                args.protocol,
                args.users,
                args.batching,
                args.image_model,
                args.max_batch_size,
                args.batch_threads,
            )
        ]
    )
    results = []
    print(TABLE_HEADER, flush=True)
    for run in runs:
        result = run_load_test(
            run.scenario,
            run.protocol,
            users=run.users,
            run_time_s=args.run_time,
            max_requests=args.max_requests,
            batching=run.batching,
            max_batch_size=run.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            batch_threads=run.batch_threads,
            image_model=run.image_model,
            processes=args.processes,
        )
        results.append(result)
        print(result.row(), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

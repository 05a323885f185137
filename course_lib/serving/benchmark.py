"""The serving benchmark of docs/benchmarks.md, in one bounded run against one server subprocess.

    python -m course_lib.serving.benchmark --out results/serving-bench-2026-12-02.json

One server (`python -m course_lib.serving` on 127.0.0.1) serves two models, `tiny` (4 -> 16 -> 2
dense) and `image` (a small CNN on 224x224x3), and the course's load tester (locust, through
loadtest.run_locust) runs every scenario against it for a fixed time: the tiny model over REST
and gRPC at 16 clients, images over REST and gRPC at 4 clients, and one tiny-model client while 4
clients send images over REST. For each scenario it records locust's throughput and latency and
the server process's CPU seconds per request (its CPU time over the scenario / requests), and
with them the machine: CPU model, cores, oneDNN, load average before and after. It writes JSON
(`--out`) and the same numbers as a markdown table (next to it, `.md`), and says which of
issue 18's goals the run met. Numbers depend on whatever else runs on the machine: the load
average is there to say how busy it was.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from course_lib.errors import CourseError
from course_lib.serving.loadtest import LatencySummary

TINY, IMAGE, IMAGE_PNG = "tiny", "image", "image_png"
MAX_REQUESTS = 1_000_000  # the run time bounds every scenario; this only guards against a runaway


@dataclass(frozen=True)
class Scenario:
    """One locust run: `clients` lists (model, protocol, users) groups sent at the same time."""

    name: str
    clients: tuple[tuple[str, str, int], ...]


SCENARIOS = (
    Scenario("tiny-rest-16", ((TINY, "rest", 16),)),
    Scenario("tiny-grpc-16", ((TINY, "grpc", 16),)),
    Scenario("image-rest-4", ((IMAGE, "rest", 4),)),
    Scenario("image-grpc-4", ((IMAGE, "grpc", 4),)),
    Scenario("tiny-rest-1-with-image-rest-4", ((IMAGE, "rest", 4), (TINY, "rest", 1))),
    # Not one of the goals: the same CNN behind a string input of PNG bytes, sent as
    # {"b64": ...}, which is how TF Serving takes images over REST (notebook 06, exercise 2).
    Scenario("image-png-rest-4", ((IMAGE_PNG, "rest", 4),)),
)


@dataclass(kw_only=True)
class GroupResult(LatencySummary):
    """locust's numbers for one group of clients in a scenario."""

    model: str
    protocol: str
    users: int


def _cpu_seconds(process) -> dict[int, float]:
    """User + system CPU seconds of the server and of each process it started (its JSON decoding
    processes), by pid: work moved to a child must still count as the server's."""
    import psutil

    seconds = {}
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            seconds[member.pid] = times.user + times.system
    return seconds


@dataclass
class ScenarioResult:
    name: str
    duration_s: float
    server_cpu_s: float
    server_cpu_ms_per_request: float
    groups: list[GroupResult] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(group.requests for group in self.groups)


def machine_facts() -> dict:
    """CPU model, cores, load average, oneDNN and versions: what the numbers depend on."""
    import tensorflow as tf

    from course_lib.environment import onednn_enabled, read_cpu_features

    cpu_model, _features = read_cpu_features()
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "onednn": onednn_enabled(),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "platform": platform.platform(),
    }


def _group_name(model: str, protocol: str) -> str:
    return f"{model} {protocol}"


def _prepare_models(work: Path, models: set[str]) -> tuple[Path, dict[tuple[str, str], Path]]:
    """Export the models the scenarios use, write the server's model config and one payload per
    model and protocol."""
    from course_lib.serving.export import export_model
    from course_lib.serving.loadtest import build_model, write_payloads

    payloads: dict[tuple[str, str], Path] = {}
    entries = []
    for model, scenario in ((TINY, "tiny-dense"), (IMAGE, "image")):
        if model not in models:
            continue
        base = work / "models" / model
        model_dir = export_model(build_model(scenario, "small_cnn"), base, 1, classify=False, regress=False)
        files = {
            protocol: work / f"{model}-{protocol}.{'json' if protocol == 'rest' else 'pb'}"
            for protocol in ("rest", "grpc")
        }
        write_payloads(model_dir, files, model_name=model)
        payloads.update({(model, protocol): path for protocol, path in files.items()})
        entries.append(_config_entry(model, base))
    if IMAGE_PNG in models:
        base = work / "models" / IMAGE_PNG
        payloads[IMAGE_PNG, "rest"] = _export_png_model(build_model("image", "small_cnn"), base, work)
        entries.append(_config_entry(IMAGE_PNG, base))
    config = work / "models.config"
    config.write_text("model_config_list {\n" + "\n".join(entries) + "\n}\n")
    return config, payloads


def _config_entry(model: str, base: Path) -> str:
    return f'  config {{ name: "{model}" base_path: "{base.resolve()}" model_platform: "tensorflow" }}'


def _export_png_model(model, base: Path, work: Path) -> Path:
    """Version 1 of `model` behind a string input of PNG bytes, and a REST body of one 224x224x3
    image of random pixels (PNG cannot compress them: the largest such image) as {"b64": ...}."""
    import base64

    import numpy as np
    import tensorflow as tf

    class PngImages(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            def decode(data):
                return tf.image.convert_image_dtype(tf.io.decode_png(data, channels=3), tf.float32)

            spec = tf.TensorSpec([224, 224, 3], tf.float32)
            images = tf.map_fn(decode, image_bytes, fn_output_signature=spec)
            return {"scores": self.model(images)}

    module = PngImages(model)
    tf.saved_model.save(module, str(base / "1"), signatures={"serving_default": module.serve})
    pixels = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    png = tf.io.encode_png(pixels).numpy()
    payload = work / f"{IMAGE_PNG}-rest.json"
    payload.write_text(json.dumps({"instances": [{"b64": base64.b64encode(png).decode("ascii")}]}))
    return payload


def _run_scenario(scenario: Scenario, server, payloads, duration_s: float, work: Path) -> ScenarioResult:
    import psutil

    from course_lib.serving.loadtest import run_locust

    mix = [
        {
            "name": _group_name(model, protocol),
            "protocol": protocol,
            "payload": str(payloads[model, protocol]),
            "path": f"/v1/models/{model}:predict",
            "users": users,
        }
        for model, protocol, users in scenario.clients
    ]
    process = psutil.Process(server.pid)
    before = _cpu_seconds(process)
    started = time.monotonic()

    def run(index: int, entry: dict) -> dict:
        return run_locust(
            protocol=entry["protocol"],
            rest_url=server.rest_url,
            grpc_target=server.grpc_target,
            payload=None,
            users=0,
            run_time_s=duration_s,
            max_requests=MAX_REQUESTS,
            work_dir=work,
            mix=[entry],
            label=f"{scenario.name}-{index}",
        )

    # one locust process per group of clients: a tiny-model client's latency must not include the
    # time its own load generator spends sending images for other users
    with ThreadPoolExecutor(len(mix)) as pool:
        parts = list(pool.map(run, range(len(mix)), mix))
    stats = {"by_name": {name: entry for part in parts for name, entry in part["by_name"].items()}}
    elapsed = time.monotonic() - started
    after = _cpu_seconds(process)
    cpu = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
    groups = []
    for model, protocol, users in scenario.clients:
        entry = stats["by_name"].get(_group_name(model, protocol))
        if entry is None:
            raise CourseError(f"Scenario {scenario.name}: locust sent no {_group_name(model, protocol)} request")
        groups.append(
            GroupResult(model=model, protocol=protocol, users=users, **LatencySummary.fields_from_locust(entry))
        )
    result = ScenarioResult(scenario.name, round(elapsed, 2), round(cpu, 3), 0.0, groups)
    result.server_cpu_ms_per_request = round(1000 * cpu / result.requests, 3) if result.requests else 0.0
    return result


def _group(results: dict[str, ScenarioResult], scenario: str, model: str) -> GroupResult:
    return next(group for group in results[scenario].groups if group.model == model)


def evaluate_goals(results: list[ScenarioResult]) -> list[dict]:
    """Issue 18 item 5's goals against this run: what was measured, and whether it met the goal."""
    by_name = {result.name: result for result in results}
    goals = []

    def goal(text: str, measured: str, met: bool) -> None:
        goals.append({"goal": text, "measured": measured, "met": met})

    if "tiny-rest-1-with-image-rest-4" in by_name:
        tiny = _group(by_name, "tiny-rest-1-with-image-rest-4", TINY)
        goal(
            "while 4 clients send 224x224x3 images over REST, a tiny-model client's p99 < 50 ms",
            f"p99 {tiny.p99_ms:.0f} ms",
            tiny.p99_ms < 50 and tiny.requests > 0,
        )
    if {"image-rest-4", "image-grpc-4"} <= by_name.keys():
        rest, grpc = _group(by_name, "image-rest-4", IMAGE), _group(by_name, "image-grpc-4", IMAGE)
        share = rest.requests_per_s / grpc.requests_per_s if grpc.requests_per_s else 0.0
        goal(
            "REST image throughput >= 30% of gRPC's",
            f"{rest.requests_per_s:.0f} vs {grpc.requests_per_s:.0f} req/s ({100 * share:.0f}%)",
            share >= 0.3,
        )
    if {"tiny-rest-16", "tiny-grpc-16"} <= by_name.keys():
        rest, grpc = _group(by_name, "tiny-rest-16", TINY), _group(by_name, "tiny-grpc-16", TINY)
        goal(
            "gRPC tiny-model req/s >= REST's at 16 clients",
            f"{grpc.requests_per_s:.0f} vs {rest.requests_per_s:.0f} req/s",
            grpc.requests_per_s >= rest.requests_per_s,
        )
        goal(
            "REST tiny model at 16 clients: >= 1,000 req/s, p99 < 25 ms, 0 errors",
            f"{rest.requests_per_s:.0f} req/s, p99 {rest.p99_ms:.0f} ms, {rest.failures} errors",
            rest.requests_per_s >= 1000 and rest.p99_ms < 25 and rest.failures == 0,
        )
    return goals


def markdown_table(report: dict) -> str:
    """The run as markdown: one row per client group, then the goals."""
    machine = report["machine"]
    onednn = {True: "on", False: "off", None: "unknown"}[machine["onednn"]]
    header = (
        f"Run {report['started']} ({report['wall_s']:.0f} s wall), {machine['cpu_model']}, "
        f"{machine['cpu_count']} cores, oneDNN {onednn}, load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.2f}' for x in report['load_average_before'])}, after "
        f"{'/'.join(f'{x:.2f}' for x in report['load_average_after'])}; {report['duration_s']:g} s per scenario, "
        f"batching {'on' if report['batching'] else 'off'}."
    )
    lines = [
        header,
        "",
        "| scenario | clients | requests | failures | req/s | p50 ms | p95 ms | p99 ms | server CPU ms/request |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {scenario['name']} | {group['users']} x {group['model']} {group['protocol']} | "
        f"{group['requests']} | {group['failures']} | {group['requests_per_s']:.0f} | {group['p50_ms']:.0f} | "
        f"{group['p95_ms']:.0f} | {group['p99_ms']:.0f} | {scenario['server_cpu_ms_per_request']:.2f} |"
        for scenario in report["scenarios"]
        for group in scenario["groups"]
    ]
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else 'no'} |" for g in report["goals"]]
    return "\n".join(lines) + "\n"


def run_benchmark(
    duration_s: float, scenarios: tuple[Scenario, ...] = SCENARIOS, batching: bool = False, extra_flags=()
) -> dict:
    """Serve both models, run every scenario for `duration_s`, stop; returns the report as a dict."""
    from course_lib.serving.launcher import serve
    from course_lib.serving.loadtest import write_batching_file

    started_at = datetime.datetime.now(datetime.UTC)
    wall_start = time.monotonic()
    load_before = os.getloadavg()
    results: list[ScenarioResult] = []
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        work = Path(tmp)
        config, payloads = _prepare_models(work, {model for s in scenarios for model, _p, _u in s.clients})
        batching_file = write_batching_file(work / "batching.config", 32, 0, 2) if batching else None
        server = serve(
            model_config_file=config,
            enable_batching=batching,
            batching_parameters_file=batching_file,
            extra_flags=list(extra_flags),
            use_real_server=False,
            log_path=work / "server.log",
            timeout=180,
        )
        try:
            for scenario in scenarios:
                results.append(_run_scenario(scenario, server, payloads, duration_s, work))
                print(f"{scenario.name}: {results[-1]}", file=sys.stderr, flush=True)
        finally:
            server.stop()
    return {
        "command": "python -m course_lib.serving.benchmark",
        "started": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "wall_s": round(time.monotonic() - wall_start, 1),
        "duration_s": duration_s,
        "batching": batching,
        "server_flags": list(extra_flags),
        "machine": machine_facts(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "scenarios": [asdict(result) for result in results],
        "goals": evaluate_goals(results),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.serving.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    parser.add_argument("--out", type=Path, default=Path(f"results/serving-bench-{today}.json"), help="JSON report")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per scenario (6 scenarios)")
    parser.add_argument(
        "--batching", action="store_true", help="serve with --enable_batching (max 32, 0 us, 2 threads)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[scenario.name for scenario in SCENARIOS],
        help="run only this scenario (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 30:
        parser.error("--duration must be between 1 and 30 seconds (the whole run stays within 3 minutes)")
    chosen = tuple(s for s in SCENARIOS if not args.scenario or s.name in args.scenario)
    report = run_benchmark(args.duration, chosen, batching=args.batching)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(report)
    args.out.with_suffix(".md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The serving benchmark command runs end to end: a real server subprocess, locust, JSON and markdown.

It runs three scenarios for one second each (the REST tiny-model client next to REST image clients,
the gRPC tiny-model clients, and REST clients sending images as base64 PNG), so it checks the
report's structure and that every request succeeded; how fast they were is the benchmark's
business (docs/benchmarks.md), never asserted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.serving.benchmark import SCENARIOS, evaluate_goals, markdown_table

REPO = Path(__file__).resolve().parents[1]
CHOSEN = ("tiny-grpc-16", "tiny-rest-1-with-image-rest-4", "image-png-rest-4")  # in the benchmark's order


@pytest.mark.slow
def test_benchmark_command_writes_a_complete_report(tmp_path):
    out = tmp_path / "serving-bench.json"
    command = [sys.executable, "-m", "course_lib.serving.benchmark", "--duration", "1", "--out", str(out)]
    for name in CHOSEN:
        command += ["--scenario", name]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads(out.read_text())
    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["cpu_model"] and machine["onednn"] in (True, False, None)
    assert len(report["load_average_before"]) == 3 and len(report["load_average_after"]) == 3
    assert [s["name"] for s in report["scenarios"]] == list(CHOSEN)
    grpc_tiny, mixed, png = report["scenarios"]

    def clients(scenario):
        return [(g["model"], g["protocol"], g["users"]) for g in scenario["groups"]]

    assert clients(mixed) == [("image", "rest", 4), ("tiny", "rest", 1)]
    assert clients(grpc_tiny) == [("tiny", "grpc", 16)]
    assert clients(png) == [("image_png", "rest", 4)]
    for scenario in report["scenarios"]:
        assert scenario["server_cpu_s"] > 0 and scenario["server_cpu_ms_per_request"] > 0
        for group in scenario["groups"]:
            assert group["requests"] > 0, (scenario["name"], group)
            assert group["failures"] == 0, (scenario["name"], group)
            assert 0 < group["p50_ms"] <= group["p99_ms"]  # locust rounds percentiles to 2 significant digits
    # only the goal these two scenarios can judge: the tiny client's p99 next to image clients
    assert [goal["goal"].split(",")[0] for goal in report["goals"]] == [
        "while 4 clients send 224x224x3 images over REST"
    ]
    table = out.with_suffix(".md").read_text()
    assert table == markdown_table(report) and table.count("\n| tiny-rest-1-with-image-rest-4 |") == 2


def test_goals_are_judged_from_the_numbers():
    from course_lib.serving.benchmark import GroupResult, ScenarioResult

    def result(name, *groups):
        return ScenarioResult(
            name,
            1.0,
            1.0,
            1.0,
            [
                GroupResult(
                    model=m,
                    protocol=p,
                    users=u,
                    requests=100,
                    failures=f,
                    requests_per_s=rps,
                    p50_ms=1.0,
                    p95_ms=2.0,
                    p99_ms=p99,
                    max_ms=p99,
                )
                for m, p, u, rps, p99, f in groups
            ],
        )

    results = [
        result("tiny-rest-16", ("tiny", "rest", 16, 1200.0, 20.0, 0)),
        result("tiny-grpc-16", ("tiny", "grpc", 16, 1100.0, 30.0, 0)),
        result("image-rest-4", ("image", "rest", 4, 40.0, 200.0, 0)),
        result("image-grpc-4", ("image", "grpc", 4, 100.0, 60.0, 0)),
        result(
            "tiny-rest-1-with-image-rest-4",
            ("image", "rest", 4, 30.0, 300.0, 0),
            ("tiny", "rest", 1, 90.0, 49.0, 0),
        ),
        result("image-png-rest-4", ("image_png", "rest", 4, 90.0, 60.0, 0)),  # no goal of its own
    ]
    assert [s.name for s in SCENARIOS] == [r.name for r in results]
    assert [goal["met"] for goal in evaluate_goals(results)] == [True, True, False, True]
    results[0].groups[0].failures = 1  # one error fails the REST goal
    assert evaluate_goals(results)[3]["met"] is False

"""Locust users for `course_lib.serving.loadtest`: REST (FastHttpUser) and gRPC Predict calls.

Run by `loadtest.py` as `locust -f locustfile.py --headless ...`; configured by environment:
LOADTEST_PROTOCOL (rest|grpc), LOADTEST_PATH (REST path), LOADTEST_PAYLOAD (file with the JSON body
or the serialized PredictRequest), LOADTEST_GRPC_TARGET, LOADTEST_MAX_REQUESTS (cap per process),
LOADTEST_SUMMARY (where to write the aggregated statistics as JSON when locust quits).
Every user sends the same prepared request, so the load generator spends its time sending, not
building requests. Only loopback targets are accepted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from locust import FastHttpUser, User, events, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

PROTOCOL = os.environ.get("LOADTEST_PROTOCOL", "rest")
PAYLOAD = Path(os.environ["LOADTEST_PAYLOAD"]).read_bytes() if os.environ.get("LOADTEST_PAYLOAD") else b""
MAX_REQUESTS = int(os.environ.get("LOADTEST_MAX_REQUESTS", "0"))
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
_sent = 0

if PROTOCOL == "grpc":  # gRPC must cooperate with gevent before any channel exists
    import grpc
    import grpc.experimental.gevent as grpc_gevent
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    grpc_gevent.init_gevent()


def _count_and_check_cap(environment) -> None:
    """Stop the whole run once this process has sent LOADTEST_MAX_REQUESTS requests."""
    global _sent
    _sent += 1
    if MAX_REQUESTS and _sent >= MAX_REQUESTS:
        if environment.runner is not None:
            environment.runner.quit()
        raise StopUser()


@events.quitting.add_listener
def _write_summary(environment, **_kwargs) -> None:
    """Write the aggregated statistics as JSON to LOADTEST_SUMMARY (the master's, when forked)."""
    path = os.environ.get("LOADTEST_SUMMARY")
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    total = environment.stats.total
    summary = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rps": total.total_rps,
        "p50": total.get_response_time_percentile(0.5),
        "p95": total.get_response_time_percentile(0.95),
        "p99": total.get_response_time_percentile(0.99),
        "max": total.max_response_time,
    }
    with open(path, "w") as handle:
        json.dump(summary, handle)


def _require_loopback(address: str) -> None:
    host = address.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if host not in LOOPBACK:
        raise SystemExit(f"loadtest targets 127.0.0.1 only, not {address!r}")


class RestPredictUser(FastHttpUser):
    """POSTs the prepared JSON body to LOADTEST_PATH, back to back."""

    abstract = PROTOCOL != "rest"
    path = os.environ.get("LOADTEST_PATH", "/v1/models/default:predict")

    def on_start(self) -> None:
        _require_loopback(self.host or "")

    @task
    def predict(self) -> None:
        # locust annotates `data` as str | dict, but its FastHttpSession sends bytes as they are
        with self.client.post(
            self.path,
            data=PAYLOAD,  # pyright: ignore[reportArgumentType]
            headers={"Content-Type": "application/json"},
            name="REST predict",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
        _count_and_check_cap(self.environment)


class GrpcPredictUser(User):
    """Sends the prepared PredictRequest over one gRPC channel per user."""

    abstract = PROTOCOL != "grpc"

    def __init__(self, environment):
        super().__init__(environment)
        target = os.environ["LOADTEST_GRPC_TARGET"]
        _require_loopback(target)
        self.channel = grpc.insecure_channel(
            target, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        # a generated proto class, built at import: pyright cannot see it
        self.request = predict_pb2.PredictRequest.FromString(PAYLOAD)  # pyright: ignore[reportAttributeAccessIssue]

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def predict(self) -> None:
        started = time.perf_counter()
        error, size = None, 0
        try:
            response = self.stub.Predict(self.request, timeout=30)
            size = response.ByteSize()
        except grpc.RpcError as exc:
            error = exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        events.request.fire(
            request_type="grpc",
            name="gRPC Predict",
            response_time=elapsed_ms,
            response_length=size,
            exception=error,
            context={},
        )
        _count_and_check_cap(self.environment)

"""Locust users for `course_lib.serving.loadtest`: REST (FastHttpUser) and gRPC Predict calls.

Run by `loadtest.py` as `locust -f locustfile.py --headless ...`; configured by environment:
LOADTEST_PROTOCOL (rest|grpc), LOADTEST_PATH (REST path), LOADTEST_PAYLOAD (file with the JSON body
or the serialized PredictRequest), LOADTEST_GRPC_TARGET, LOADTEST_MAX_REQUESTS (cap per process),
LOADTEST_SUMMARY (where to write the aggregated statistics as JSON when locust quits).
LOADTEST_MIX instead runs several kinds of users at once: a JSON list of {"name", "protocol",
"payload", "path" (REST), "users"}, each a user class with that fixed number of users; the summary
then has statistics per name too (a tiny-model client measured while others send images).
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
MIX: list[dict] = json.loads(os.environ["LOADTEST_MIX"]) if os.environ.get("LOADTEST_MIX") else []
PROTOCOLS = {entry["protocol"] for entry in MIX} if MIX else {PROTOCOL}
MAX_REQUESTS = int(os.environ.get("LOADTEST_MAX_REQUESTS", "0"))
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
_sent = 0

if "grpc" in PROTOCOLS:  # gRPC must cooperate with gevent before any channel exists
    import grpc
    import grpc.experimental.gevent as grpc_gevent

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
    summary = _stats_dict(environment.stats.total)
    summary["by_name"] = {name: _stats_dict(entry) for (name, _method), entry in environment.stats.entries.items()}
    with open(path, "w") as handle:
        json.dump(summary, handle)


def _stats_dict(entry) -> dict:
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": entry.total_rps,
        "p50": entry.get_response_time_percentile(0.5),
        "p95": entry.get_response_time_percentile(0.95),
        "p99": entry.get_response_time_percentile(0.99),
        "max": entry.max_response_time,
    }


def _require_loopback(address: str) -> None:
    host = address.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if host not in LOOPBACK:
        raise SystemExit(f"loadtest targets 127.0.0.1 only, not {address!r}")


class RestPredictUser(FastHttpUser):
    """POSTs the prepared JSON body to LOADTEST_PATH, back to back."""

    abstract = bool(MIX) or PROTOCOL != "rest"
    path = os.environ.get("LOADTEST_PATH", "/v1/models/default:predict")
    payload = PAYLOAD
    request_name = "REST predict"

    def on_start(self) -> None:
        _require_loopback(self.host or "")

    @task
    def predict(self) -> None:
        # locust annotates `data` as str | dict, but its FastHttpSession sends bytes as they are
        with self.client.post(
            self.path,
            data=self.payload,  # pyright: ignore[reportArgumentType]
            headers={"Content-Type": "application/json"},
            name=self.request_name,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
        _count_and_check_cap(self.environment)


class GrpcPredictUser(User):
    """Sends the prepared PredictRequest over one gRPC channel per user."""

    abstract = bool(MIX) or PROTOCOL != "grpc"
    payload = PAYLOAD
    request_name = "gRPC Predict"

    def __init__(self, environment):
        super().__init__(environment)
        target = os.environ["LOADTEST_GRPC_TARGET"]
        _require_loopback(target)
        self.channel = grpc.insecure_channel(
            target, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )
        # The prepared request goes out as its serialized bytes and the answer stays bytes, as the REST
        # user sends a prepared body: the load generator neither imports TensorFlow nor parses protos.
        self.predict_call = self.channel.unary_unary(PREDICT_METHOD)

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def predict(self) -> None:
        started = time.perf_counter()
        error, size = None, 0
        try:
            size = len(self.predict_call(self.payload, timeout=30))
        except grpc.RpcError as exc:
            error = exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        events.request.fire(
            request_type="grpc",
            name=self.request_name,
            response_time=elapsed_ms,
            response_length=size,
            exception=error,
            context={},
        )
        _count_and_check_cap(self.environment)


def _mix_user_class(index: int, entry: dict) -> type:
    """A user class for one LOADTEST_MIX entry: its protocol, payload, REST path and user count."""
    base = RestPredictUser if entry["protocol"] == "rest" else GrpcPredictUser
    attributes = {
        "abstract": False,
        "fixed_count": int(entry["users"]),
        "payload": Path(entry["payload"]).read_bytes(),
        "request_name": entry["name"],
        "__module__": __name__,
    }
    if entry["protocol"] == "rest":
        attributes["path"] = entry["path"]
    return type(f"MixUser{index}", (base,), attributes)


for _index, _entry in enumerate(MIX):
    globals()[f"MixUser{_index}"] = _mix_user_class(_index, _entry)

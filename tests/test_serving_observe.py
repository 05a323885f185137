"""Observability: Prometheus metrics under TF Serving's names, the gRPC health service, an access log.

One server started with --monitoring_config_file, --enable_grpc_healthcheck_service and
--access_log_file answers good and bad requests over REST and gRPC; the metrics count each under its
model and status, latency histograms carry the entrypoint, and the log has a line per request. The
module's other server, started without those flags, serves none of it.
"""

# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import grpc
import numpy as np
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from serving_fixtures.models import serve_classifier

from course_lib.errors import CourseError
from course_lib.serving import GrpcClient, ServingError
from course_lib.serving.config import parse_server_flags

X = np.array([[1, 2, 3, 4]], np.float32)
METRICS = "/monitoring/prometheus/metrics"

pytestmark = pytest.mark.slow  # model servers as subprocesses


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    root = tmp_path_factory.mktemp("observed")
    (root / "monitoring.config").write_text("prometheus_config { enable: true }")
    handle = serve_classifier(
        root,
        f"--monitoring_config_file={root / 'monitoring.config'}",
        "--enable_grpc_healthcheck_service=true",
        f"--access_log_file={root / 'access.log'}",
    )
    before = samples(handle)  # the start-up's readiness probes are counted too: tests compare with this
    url = f"{handle.rest_url}/v1/models/clf:predict"
    assert requests.post(url, json={"instances": X.tolist()}, timeout=30).status_code == 200
    assert requests.post(url, json={"instances": X[:, :3].tolist()}, timeout=30).status_code == 400
    with GrpcClient(handle.grpc_target, "clf") as client:
        client.predict({"x": X})
        client.predict({"x": X})
        with pytest.raises(ServingError):
            client.predict({"x": X}, model_name="nope")
    yield handle, root, before
    handle.stop()


def samples(server) -> dict:
    response = requests.get(server.rest_url + METRICS, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_requests_are_counted_by_model_and_status_under_tf_servings_names(observed):
    server, _, before = observed
    found = samples(server)

    def added(model: str, status: str) -> float:
        key = (":tensorflow:serving:request_count", (("model_name", model), ("status", status)))
        return found.get(key, 0) - before.get(key, 0)

    assert (added("clf", "OK"), added("clf", "INVALID_ARGUMENT"), added("nope", "NOT_FOUND")) == (3, 1, 1)


def test_latency_histograms_carry_api_and_entrypoint(observed):
    server, _, _ = observed
    found = samples(server)
    latency = ":tensorflow:serving:request_latency_count"
    assert found[(latency, (("API", "predict"), ("entrypoint", "REST"), ("model_name", "clf")))] == 1
    assert found[(latency, (("API", "Predict"), ("entrypoint", "GRPC"), ("model_name", "clf")))] == 2
    runtime = ":tensorflow:serving:runtime_latency_count"
    assert found[(runtime, (("API", "Predict"), ("model_name", "clf"), ("runtime", "TF")))] == 3
    buckets = [v for (name, labels), v in found.items() if name == ":tensorflow:serving:request_latency_bucket"]
    assert len(buckets) % 34 == 0 and len(buckets) >= 2 * 34  # TF Serving's 33 buckets and +Inf, per label set


def test_the_health_service_says_serving_for_tf_servings_service_names(observed):
    server, _, _ = observed
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", "ModelService", "PredictionService"):
            answer = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as error:
            stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_access_log_has_one_line_per_request(observed):
    _, root, _ = observed
    lines = (root / "access.log").read_text().splitlines()
    assert len([line for line in lines if " REST predict " in line]) == 2
    assert len([line for line in lines if " GRPC Predict " in line]) == 3
    assert any("INVALID_ARGUMENT" in line and "POST /v1/models/clf:predict" in line for line in lines)


def test_without_the_flags_there_are_no_metrics_health_or_log(tmp_path):
    with serve_classifier(tmp_path) as server:
        assert requests.get(server.rest_url + METRICS, timeout=10).status_code == 404
        with grpc.insecure_channel(server.grpc_target) as channel, pytest.raises(grpc.RpcError) as error:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not list(tmp_path.glob("*access*"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("prometheus_config { enable: true path: 'metrics' }", "must start with /"),
        ("prometheus_config { enable: true path: '/v1/models/x' }", "outside /v1/"),
        ("prometheus { enable: true }", "not a valid MonitoringConfig"),
    ],
)
def test_a_wrong_monitoring_config_is_refused_with_what_to_write(tmp_path, text, message):
    import tensorflow as tf

    from course_lib.serving import export_model

    model = export_model(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)]), tmp_path / "m", 1)
    (tmp_path / "monitoring.config").write_text(text)
    flags = [f"--model_base_path={model.parent}", f"--monitoring_config_file={tmp_path / 'monitoring.config'}"]
    with pytest.raises(CourseError, match=message):
        parse_server_flags(flags)

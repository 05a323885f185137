"""Versions come and go under a running server: no restart, no failed request, no crash.

One sequential story on purpose (each step starts from the previous one's state): a new version
arrives while clients keep calling, a version folder is removed, a broken version appears, and
the broken version is fixed.
"""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
import requests
from serving_fixtures.models import expected_probabilities, export_classifier, write_broken_version

from course_lib.serving import GrpcClient, RestClient, serve

X = np.array([[1.0, -2.0, 0.5, 3.0]], np.float32)


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def served_scale(rest: RestClient) -> float:
    """Which version answered, read from the answer itself (version v was exported with scale v)."""
    prediction = np.array(rest.predict(instances=X)["predictions"])
    for scale in (1.0, 2.0, 3.0):
        if np.allclose(prediction, expected_probabilities(X, scale), rtol=1e-5):
            return scale
    raise AssertionError(f"prediction {prediction} matches no exported version")


def states(rest: RestClient) -> dict[str, str]:
    return {v["version"]: v["state"] for v in rest.status()["model_version_status"]}


class Hammer:
    """Clients calling REST and gRPC in a loop, recording every failure and which versions answered."""

    def __init__(self, rest_url: str, grpc_target: str):
        self.rest_url, self.grpc_target = rest_url, grpc_target
        self.failures: list[str] = []
        self.versions: set[int] = set()
        self.calls = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._rest_loop),
            threading.Thread(target=self._rest_loop),
            threading.Thread(target=self._grpc_loop),
        ]

    def _rest_loop(self):
        with RestClient(self.rest_url, "clf", timeout=30) as client:
            while not self._stop.is_set():
                try:
                    self.versions.add(int(served_scale(client)))
                    self.calls += 1
                except Exception as exc:
                    self.failures.append(f"REST: {exc}")

    def _grpc_loop(self):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        with GrpcClient(self.grpc_target, "clf") as client:
            request = predict_pb2.PredictRequest()  # pyright: ignore[reportAttributeAccessIssue]  (generated proto)
            request.model_spec.name = "clf"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
            while not self._stop.is_set():
                try:
                    self.versions.add(client.prediction.Predict(request, timeout=30).model_spec.version.value)
                    self.calls += 1
                except Exception as exc:
                    self.failures.append(f"gRPC: {exc}")

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


pytestmark = pytest.mark.slow  # a model server loading versions as they come


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    root = tmp_path_factory.mktemp("hot_reload")
    base = root / "clf"
    export_classifier(base, 1)
    handle = serve(
        "clf", base, file_system_poll_wait_seconds=0.2, use_real_server=False, log_path=root / "server.log", timeout=180
    )
    yield handle, base
    handle.stop()


def test_versions_change_without_restart_and_without_failed_requests(running):
    server, base = running
    rest = RestClient(server.rest_url, "clf")
    assert served_scale(rest) == 1.0

    # 1. a new version arrives while clients call continuously: none fails, both versions answer
    with Hammer(server.rest_url, server.grpc_target) as hammer:
        wait_until(lambda: hammer.calls > 20, what="clients to get going")
        export_classifier(base, 2)
        wait_until(lambda: 2 in hammer.versions, what="version 2 to answer")
        calls_after_switch = hammer.calls
        wait_until(lambda: hammer.calls > calls_after_switch + 20, what="more calls on version 2")
    assert hammer.failures == []
    assert hammer.versions == {1, 2}
    assert states(rest) == {"2": "AVAILABLE", "1": "END"}

    # 2. removing the newest folder unloads it and brings the older one back
    shutil.rmtree(base / "2")
    wait_until(
        lambda: states(rest).get("1") == "AVAILABLE" and states(rest).get("2") == "END",
        what="version 2 unloaded, version 1 reloaded",
    )
    assert served_scale(rest) == 1.0

    # 3. a broken version is reported with its error; the server keeps answering from version 1
    write_broken_version(base, 3)
    wait_until(lambda: states(rest).get("3") == "END", what="version 3 to fail")
    broken = rest.status(version=3)["model_version_status"][0]["status"]
    assert broken["error_code"] != "OK" and broken["error_message"]
    assert served_scale(rest) == 1.0 and server.is_running()

    # 4. fixing the folder gets it retried and served
    shutil.rmtree(base / "3")
    staging = base.parent / "staging"
    export_classifier(staging, 3)
    (staging / "3").rename(base / "3")
    wait_until(lambda: states(rest).get("3") == "AVAILABLE", what="the fixed version 3 to load")
    assert served_scale(rest) == 3.0

    # 5. a ReloadConfigRequest over gRPC swaps the model list without a restart
    from tensorflow_serving.apis import model_management_pb2

    # a generated proto class, built at import: pyright cannot see it
    request = model_management_pb2.ReloadConfigRequest()  # pyright: ignore[reportAttributeAccessIssue]
    model = request.config.model_config_list.config.add(name="renamed", base_path=str(base))
    model.model_platform = "tensorflow"
    with GrpcClient(server.grpc_target) as client:
        assert client.models.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0
    assert RestClient(server.rest_url, "renamed").status()["model_version_status"][0]["version"] == "3"
    assert requests.get(server.rest_url + "/v1/models/clf", timeout=10).status_code == 404

    log = server.log_tail(400)
    assert "Unloading servable version {name: clf version: 2}" in log
    assert "Loading servable version {name: clf version: 3} failed" in log
    assert "Traceback" not in server.log_path.read_text()

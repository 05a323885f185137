"""The REST and gRPC APIs of one running server (python -m course_lib.serving) behave like TF Serving's.

One server for the whole module: three models from a models.config (versions, a specific policy,
labels), started as a subprocess on free ports. Expected answers come from the models' weights.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests
from google.protobuf import json_format
from serving_fixtures.models import (
    CLASS_NAMES,
    build_regressor,
    expected_probabilities,
    export_classifier,
    export_multi,
    regressor_weights,
)

from course_lib.serving import GrpcClient, RestClient, ServingError, export_model, serve
from course_lib.serving.loadtest import run_locust

MAX_REQUEST_BYTES = 200_000
X = np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], np.float32)


pytestmark = pytest.mark.slow  # one model server for the module, three models loaded


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_api")
    export_classifier(root / "clf", 1)
    export_classifier(root / "clf", 2)
    export_model(build_regressor(), root / "reg", 1)
    export_multi(root / "multi", 5)
    config = root / "models.config"
    config.write_text(f"""
model_config_list {{
  config {{
    name: 'clf' base_path: '{root / "clf"}' model_platform: 'tensorflow'
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: 'stable' value: 1 }}
    version_labels {{ key: 'canary' value: 2 }}
  }}
  config {{ name: 'reg' base_path: '{root / "reg"}' model_platform: 'tensorflow' }}
  config {{ name: 'multi' base_path: '{root / "multi"}' model_platform: 'tensorflow' }}
}}
""")
    handle = serve(
        model_config_file=config,
        use_real_server=False,
        log_path=root / "server.log",
        extra_flags=[f"--max_request_bytes={MAX_REQUEST_BYTES}"],
        timeout=180,
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def rest(server):
    with RestClient(server.rest_url, "clf") as client:
        yield client


@pytest.fixture(scope="module")
def grpc_client(server):
    with GrpcClient(server.grpc_target, "clf") as client:
        yield client


def post(server, path: str, body) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(server.rest_url + path, data=data, timeout=30)


# ----- REST: status and metadata ---------------------------------------------------------------------


def test_status_lists_every_served_version_newest_first(server):
    response = requests.get(server.rest_url + "/v1/models/clf", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    ok = {"error_code": "OK", "error_message": ""}
    assert response.json() == {
        "model_version_status": [
            {"version": "2", "state": "AVAILABLE", "status": ok},
            {"version": "1", "state": "AVAILABLE", "status": ok},
        ]
    }


@pytest.mark.parametrize("path, version", [("/versions/1", "1"), ("/labels/canary", "2"), ("/labels/stable", "1")])
def test_status_of_one_version_by_number_or_label(rest, path, version):
    body = requests.get(rest.base_url + "/v1/models/clf" + path, timeout=10).json()
    assert [v["version"] for v in body["model_version_status"]] == [version]


def test_metadata_has_model_spec_and_signature_defs(rest):
    body = rest.metadata()
    assert body["model_spec"] == {"name": "clf", "signature_name": "", "version": "2"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "tensorflow/serving/classify", "__saved_model_init_op"} <= set(signatures)
    predict = signatures["serving_default"]
    assert predict["method_name"] == "tensorflow/serving/predict"
    assert predict["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert predict["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}, {"size": "4", "name": ""}]
    assert list(predict["outputs"]) == ["probs"]
    assert rest.metadata(label="stable")["model_spec"]["version"] == "1"


# ----- REST: predict, classify, regress ------------------------------------------------------------


def test_row_format_predict_uses_the_latest_version(rest):
    body = rest.predict(instances=X.tolist())
    np.testing.assert_allclose(body["predictions"], expected_probabilities(X, 2.0), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, scale",
    [({"version": 1}, 1.0), ({"label": "stable"}, 1.0), ({"label": "canary"}, 2.0), ({"version": 2}, 2.0)],
)
def test_versions_and_labels_choose_the_model(rest, kwargs, scale):
    body = rest.predict(instances=X, **kwargs)
    np.testing.assert_allclose(body["predictions"], expected_probabilities(X, scale), rtol=1e-5)


def test_columnar_predict_answers_with_outputs(rest):
    body = rest.predict(inputs={"x": X}, signature_name="serving_default")
    assert list(body) == ["outputs"]
    np.testing.assert_allclose(body["outputs"], expected_probabilities(X, 2.0), rtol=1e-5)


def test_several_outputs_come_back_as_objects_per_instance_with_b64_for_bytes(server):
    raw = b"\x00\xffimage"
    response = post(
        server,
        "/v1/models/multi:predict",
        {
            "instances": [
                {"a": [0.1, 1e6], "b": [1, 2, 3], "text": {"b64": base64.b64encode(raw).decode()}},
                {"a": [1.5, 2], "b": [0, 0, -1], "text": "bob"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first == {
        "doubled": [0.2, 2000000.0],
        "echo_bytes": {"b64": base64.b64encode(raw).decode()},
        "greeting": "hi \x00\ufffdimage",
        "length": len(raw),
        "total": pytest.approx(1e6 + 6.1),
    }
    assert second == {
        "doubled": [3.0, 4.0],
        "echo_bytes": {"b64": base64.b64encode(b"bob").decode()},
        "greeting": "hi bob",
        "length": 3,
        "total": 2.5,
    }
    assert "[0.2, 2e+06]" in response.text  # floats written as TF Serving writes them


def test_columnar_with_several_outputs_and_a_named_signature(server):
    response = post(server, "/v1/models/multi:predict", {"signature_name": "halve", "inputs": {"a": [[1, 3]]}})
    assert response.json() == {"outputs": [[0.5, 1.5]]}
    response = post(server, "/v1/models/multi:predict", {"inputs": {"a": [[1, 2]], "b": [[1, 1, 1]], "text": ["x"]}})
    assert set(response.json()["outputs"]) == {"doubled", "echo_bytes", "greeting", "length", "total"}


def test_classify_returns_labels_with_scores(rest):
    body = rest.classify([{"x": [1.0, 2.0, 3.0, 4.0]}], version=1)
    expected = expected_probabilities(np.array([[1, 2, 3, 4]]), 1.0)[0]
    (row,) = body["results"]
    assert [label for label, _ in row] == CLASS_NAMES
    np.testing.assert_allclose([score for _, score in row], expected, rtol=1e-5)


def test_regress_with_examples_and_context(rest):
    kernel, bias = regressor_weights()
    body = rest.regress([{"features": [1.0, 2.0, 3.0]}, {"features": [0.0, 0.5, -1.0]}], model_name="reg")
    expected = (np.array([[1, 2, 3], [0, 0.5, -1]], np.float32) @ kernel + bias)[:, 0]
    np.testing.assert_allclose(body["results"], expected, rtol=1e-6)
    with_context = rest.regress([{}], context={"features": [1.0, 2.0, 3.0]}, model_name="reg")
    np.testing.assert_allclose(with_context["results"], expected[:1], rtol=1e-6)


# ----- REST: errors, status codes, and survival ----------------------------------------------------

GOOD_PREDICT = {"instances": [[1, 2, 3, 4]]}


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        ("POST", "/v1/models/nope:predict", GOOD_PREDICT, 404, "Servable not found for request: Latest(nope)"),
        ("POST", "/v1/models/clf/versions/9:predict", GOOD_PREDICT, 404, "Specific(clf, 9)"),
        ("POST", "/v1/models/clf/labels/beta:predict", GOOD_PREDICT, 400, "Unrecognized servable version label: beta"),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/clf/versions/9", None, 404, "Could not find version 9 of model clf"),
        ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found"),
        ("GET", "/v1/models", None, 400, "Missing model name in request."),
        ("GET", "/v1/models/clf:predict", None, 400, "Malformed request: GET /v1/models/clf:predict"),
        ("POST", "/v1/models/clf/metadata", GOOD_PREDICT, 400, "Malformed request"),
        ("PUT", "/v1/models/clf", GOOD_PREDICT, 400, "Malformed request"),
        ("POST", "/v1/models/clf/versions/HELLO:predict", GOOD_PREDICT, 400, "Malformed request"),
        (
            "POST",
            "/v1/models/clf/versions/99999999999999999999:predict",
            GOOD_PREDICT,
            400,
            "Failed to convert version",
        ),
        ("POST", "/v1/models/clf:predict", b"", 400, "JSON Parse error: The document is empty"),
        ("POST", "/v1/models/clf:predict", b"instances = [1, 2]", 400, "JSON Parse error: Invalid value."),
        (
            "POST",
            "/v1/models/clf:predict",
            {"instances": [["a", "b", "c", "d"]]},
            400,
            "is not of expected type: float",
        ),
        ("POST", "/v1/models/clf:predict", {"instances": [[1, 2, 3]]}, 400, "expects [-1,4]"),
        ("POST", "/v1/models/clf:predict", {"instances": [[1, 2, 3, 4], [1, 2]]}, 400, "Expecting tensor size"),
        ("POST", "/v1/models/clf:predict", {"inputs": [[1, 2, [3], 4]]}, 400, "Encountered list at unexpected level"),
        (
            "POST",
            "/v1/models/clf:predict",
            {"signature_name": "nope", **GOOD_PREDICT},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        ("POST", "/v1/models/clf:predict", {"signature_name": 5}, 400, "'signature_name' key must be a string"),
        (
            "POST",
            "/v1/models/clf:predict",
            {"signature_name": "__saved_model_init_op", **GOOD_PREDICT},
            400,
            "Failed to get input map for signature",
        ),
        (
            "POST",
            "/v1/models/multi:predict",
            {"instances": [{"a": [1, 2], "b": [1.5, 2, 3], "text": "t"}]},
            400,
            "is not of expected type: int32",
        ),
        (
            "POST",
            "/v1/models/reg:classify",
            {"examples": [{"features": [1.0, 2.0, 3.0]}]},
            400,
            "No classification inputs found",
        ),
        (
            "POST",
            "/v1/models/clf:regress",
            {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}]},
            400,
            "No signature was found with the name: tensorflow/serving/regress",
        ),
        ("GET", "/elsewhere", None, 404, "Not found"),
    ],
)
def test_bad_requests_get_tf_serving_status_codes_and_the_server_stays_up(server, method, path, body, status, message):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
    response = requests.request(method, server.rest_url + path, data=data, timeout=30)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert post(server, "/v1/models/clf:predict", GOOD_PREDICT).status_code == 200


def test_an_oversized_body_is_refused_with_413(server):
    big = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]] * 20_000})
    assert len(big) > MAX_REQUEST_BYTES
    response = requests.post(server.rest_url + "/v1/models/clf:predict", data=big, timeout=30)
    assert response.status_code == 413
    assert "too large" in response.json()["error"] and "--max_request_bytes" in response.json()["error"]
    assert post(server, "/v1/models/clf:predict", GOOD_PREDICT).status_code == 200


def test_rest_client_raises_the_servers_error(rest):
    with pytest.raises(ServingError, match="Servable not found") as info:
        rest.predict(instances=X, model_name="nope")
    assert info.value.http_status == 404 and info.value.code == grpc.StatusCode.NOT_FOUND


def test_concurrent_requests_each_get_their_own_answer(rest):
    inputs = [np.full((1, 4), i / 10, np.float32) for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda x: rest.predict(instances=x)["predictions"], inputs))
    for x, answer in zip(inputs, answers, strict=True):
        np.testing.assert_allclose(answer, expected_probabilities(x, 2.0), rtol=1e-5)


# ----- gRPC ----------------------------------------------------------------------------------------


def test_grpc_predict_matches_rest_and_names_the_version(rest, grpc_client):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    outputs = grpc_client.predict({"x": X}, version=1)
    np.testing.assert_allclose(outputs["probs"], rest.predict(instances=X, version=1)["predictions"], rtol=1e-6)
    request = predict_pb2.PredictRequest()  # pyright: ignore[reportAttributeAccessIssue]  (generated proto)
    request.model_spec.name = "clf"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_client.channel)
    response = stub.Predict(request, timeout=10)
    assert (response.model_spec.name, response.model_spec.version.value, response.model_spec.signature_name) == (
        "clf",
        2,
        "serving_default",
    )


def test_grpc_single_array_labels_and_output_filter(grpc_client):
    outputs = grpc_client.predict(X, label="stable")
    np.testing.assert_allclose(outputs["probs"], expected_probabilities(X, 1.0), rtol=1e-5)
    filtered = grpc_client.predict(
        {"a": np.ones((1, 2), np.float32), "b": np.ones((1, 3), np.int32), "text": np.array([b"hey"], object)},
        model_name="multi",
        output_filter=["length", "echo_bytes"],
    )
    assert set(filtered) == {"length", "echo_bytes"}
    assert filtered["length"].tolist() == [3] and filtered["echo_bytes"].tolist() == [b"hey"]


def test_grpc_metadata_and_status_match_rest(rest, grpc_client):
    from course_lib.serving.rest import metadata_json

    metadata = grpc_client.metadata()
    assert json.loads(metadata_json(metadata)) == rest.metadata()
    status = grpc_client.status()
    assert json.loads(json_format.MessageToJson(status, always_print_fields_with_no_presence=True)) == rest.status()


def test_grpc_classify_and_regress_match_rest(rest, grpc_client):
    examples = [{"x": [1.0, 2.0, 3.0, 4.0]}, {"x": [0.5, 0.25, 0.0, -1.0]}]
    classified = grpc_client.classify(examples)
    rows = [[[c.label, c.score] for c in row.classes] for row in classified.result.classifications]
    rest_rows = rest.classify(examples)["results"]
    assert [[label for label, _ in row] for row in rows] == [[label for label, _ in row] for row in rest_rows]
    np.testing.assert_allclose([[s for _, s in row] for row in rows], [[s for _, s in row] for row in rest_rows])
    regressed = grpc_client.regress([{"features": [1.0, 2.0, 3.0]}], model_name="reg")
    assert regressed.model_spec.signature_name == "tensorflow/serving/regress"
    np.testing.assert_allclose(
        [r.value for r in regressed.result.regressions],
        rest.regress([{"features": [1.0, 2.0, 3.0]}], model_name="reg")["results"],
    )


@pytest.mark.parametrize(
    "call, code, message",
    [
        (lambda c: c.predict({"x": X}, model_name="nope"), grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
        (lambda c: c.predict({"x": X}, version=7), grpc.StatusCode.NOT_FOUND, "Specific(clf, 7)"),
        (lambda c: c.predict({"x": X.astype(np.float64)}), grpc.StatusCode.INVALID_ARGUMENT, "has dtype double"),
        (lambda c: c.predict({"x": X[:, :3]}), grpc.StatusCode.INVALID_ARGUMENT, "expects [-1,4]"),
        (
            lambda c: c.predict({"x": X}, signature_name="nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
        (
            lambda c: c.predict({"x": X}, output_filter=["nope"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "output tensor alias not found in signature: nope",
        ),
        (
            lambda c: c.predict({"x": X, "y": X}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input size does not match signature",
        ),
        (lambda c: c.predict({"x": np.zeros((20_000, 4), np.float32)}), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        (lambda c: c.status(version=9), grpc.StatusCode.NOT_FOUND, "Could not find version 9 of model clf"),
        (lambda c: c.metadata(label="beta"), grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label"),
    ],
)
def test_grpc_errors_carry_tf_serving_codes_and_the_server_stays_up(grpc_client, call, code, message):
    with pytest.raises(ServingError) as info:
        call(grpc_client)
    assert info.value.code == code and message in info.value.message
    assert grpc_client.predict({"x": X})["probs"].shape == (2, 3)


# ----- the load test tool, bounded, against this server ---------------------------------------------


def test_locust_run_is_bounded_by_its_request_cap_and_reads_back_stats(server, tmp_path):
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"instances": [[1, 2, 3, 4]]}))
    stats = run_locust(
        protocol="rest",
        rest_url=server.rest_url,
        grpc_target=server.grpc_target,
        payload=payload,
        users=2,
        run_time_s=20,
        max_requests=40,
        work_dir=tmp_path,
        model_name="clf",
    )
    assert stats["failures"] == 0
    assert 40 <= stats["requests"] <= 42  # the cap stops the run long before its 20 s


def test_server_logged_no_crash(server):
    assert server.is_running()
    log = server.log_path.read_text()
    assert "Traceback" not in log
    assert "Successfully loaded servable version {name: clf version: 2}" in log

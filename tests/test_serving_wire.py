"""Wire compatibility with tensorflow_model_server 2.20, seen by clients that use the raw protos.

TF Serving's own gRPC example (tensorflow_serving/example/resnet_client_grpc.py) reads
`result.outputs[name].float_val`; the typed fields must hold the values unless the server is told
`--enable_serialization_as_tensor_content`. Errors carry TF Serving's status codes and texts
(server_core.cc, multi_inference.cc), and no client input gets a 5xx. TLS: tests/test_serving_tls.py.
"""

# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from serving_fixtures.models import expected_probabilities, serve_classifier
from tensorflow_serving.apis import inference_pb2, predict_pb2, prediction_service_pb2_grpc

from course_lib.serving import export_model
from course_lib.serving.config import IGNORED_FLAGS, TF_SERVING_FLAGS, build_flag_parser, parse_server_flags

X = np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], np.float32)
CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"

pytestmark = pytest.mark.slow  # model servers as subprocesses


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = serve_classifier(tmp_path_factory.mktemp("wire"))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def predict_request(name="clf") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
    return request


def test_predict_fills_the_typed_fields_that_tf_servings_own_example_reads(stub):
    output = stub.Predict(predict_request(), timeout=30).outputs["probs"]
    assert output.tensor_content == b"" and output.dtype == tf.float32.as_datatype_enum
    assert [d.size for d in output.tensor_shape.dim] == [2, 3]
    # resnet_client_grpc.py: np.argmax(result.outputs[...].float_val)
    np.testing.assert_allclose(np.reshape(output.float_val, (2, 3)), expected_probabilities(X, 1.0), rtol=1e-5)
    np.testing.assert_allclose(tf.make_ndarray(output), expected_probabilities(X, 1.0), rtol=1e-5)


def test_tensor_content_only_when_the_flag_asks(tmp_path):
    handle = serve_classifier(tmp_path, "--enable_serialization_as_tensor_content=true")
    with handle, grpc.insecure_channel(handle.grpc_target) as channel:
        output = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(predict_request(), timeout=30)
    probs = output.outputs["probs"]
    assert list(probs.float_val) == [] and len(probs.tensor_content) == 2 * 3 * 4
    np.testing.assert_allclose(tf.make_ndarray(probs), expected_probabilities(X, 1.0), rtol=1e-5)


@pytest.mark.parametrize("name", ["", None])
def test_a_request_without_a_model_name_is_an_invalid_argument(stub, name):
    request = predict_request() if name is not None else predict_pb2.PredictRequest()
    request.model_spec.name = name or ""
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "ModelSpec has no name specified."


def multi_request(*tasks: tuple[str, str, str]) -> inference_pb2.MultiInferenceRequest:
    request = inference_pb2.MultiInferenceRequest()
    for model, signature, method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = model, signature
    for row in X:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.extend(row.tolist())
    return request


def test_multi_inference_classifies_like_classify(stub):
    response = stub.MultiInference(multi_request(("clf", CLASSIFY, CLASSIFY)), timeout=30)
    (result,) = response.results
    assert (result.model_spec.name, result.model_spec.version.value, result.model_spec.signature_name) == (
        "clf",
        1,
        CLASSIFY,
    )
    scores = [[c.score for c in row.classes] for row in result.classification_result.classifications]
    np.testing.assert_allclose(scores, expected_probabilities(X, 1.0), rtol=1e-5)


@pytest.mark.parametrize(
    "tasks, code, message",
    [
        ([("clf", CLASSIFY, CLASSIFY), ("other", REGRESS, REGRESS)], "INVALID_ARGUMENT", "must access the same model"),
        ([("clf", CLASSIFY, CLASSIFY), ("clf", CLASSIFY, CLASSIFY)], "INVALID_ARGUMENT", "Duplicate evaluation"),
        ([("clf", "nope", CLASSIFY)], "INVALID_ARGUMENT", "Requested signature not found in model graph: nope"),
        ([("clf", CLASSIFY, "tensorflow/serving/predict")], "UNIMPLEMENTED", "Unsupported signature method_name"),
        ([], "INVALID_ARGUMENT", "ModelSpec has no name specified."),
    ],
)
def test_multi_inference_refuses_what_tf_serving_refuses(stub, tasks, code, message):
    with pytest.raises(grpc.RpcError) as error:
        stub.MultiInference(multi_request(*tasks), timeout=30)
    assert error.value.code() == getattr(grpc.StatusCode, code) and message in error.value.details()


def test_a_huge_integer_in_json_is_the_clients_error_not_the_servers(server):
    body = '{"instances": [[' + "9" * 5000 + ", 1, 2, 3]]}"
    response = requests.post(f"{server.rest_url}/v1/models/clf:predict", data=body, timeout=30)
    assert response.status_code == 400 and "JSON Parse error" in response.json()["error"]
    assert requests.post(f"{server.rest_url}/v1/models/clf:predict", json={"instances": X.tolist()}, timeout=30).ok


def test_every_tf_serving_2_20_flag_is_accepted(tmp_path):
    model = export_model(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)]), tmp_path / "m", 1)
    base = [f"--model_base_path={model.parent}"]
    known = {action.dest for action in build_flag_parser()._actions}
    assert set(TF_SERVING_FLAGS) - {"version"} <= known, set(TF_SERVING_FLAGS) - known
    assert set(IGNORED_FLAGS) <= set(TF_SERVING_FLAGS), "an ignored flag that tensorflow_model_server does not have"
    for name in IGNORED_FLAGS:
        assert parse_server_flags([*base, f"--{name}=1"]).ignored_flags == {name: "1"}
    assert parse_server_flags([*base, "--enable_serialization_as_tensor_content=true"]).tensor_content


def test_a_security_flag_is_never_ignored(tmp_path):
    from course_lib.errors import CourseError

    model = export_model(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)]), tmp_path / "m", 1)
    base = [f"--model_base_path={model.parent}"]
    with pytest.raises(CourseError, match=r"--use_alts_credentials .* use --ssl_config_file"):
        parse_server_flags([*base, "--use_alts_credentials=true"])
    (tmp_path / "ssl.config").write_text("server_key: ''")
    with pytest.raises(CourseError, match="server_key and server_cert is empty"):
        parse_server_flags([*base, f"--ssl_config_file={tmp_path / 'ssl.config'}"])
    (tmp_path / "ssl.config").write_text("server_key: 'k' server_cert: 'c' client_verify: true")
    with pytest.raises(CourseError, match="client_verify is true but custom_ca is empty"):
        parse_server_flags([*base, f"--ssl_config_file={tmp_path / 'ssl.config'}"])
    (tmp_path / "ssl.config").write_text("server_kee: 'k'")
    with pytest.raises(CourseError, match="not a valid SSLConfig"):
        parse_server_flags([*base, f"--ssl_config_file={tmp_path / 'ssl.config'}"])


def test_big_bodies_decoded_off_the_event_loop_answer_the_same_and_fail_the_same(server):
    """Bodies over OFFLOAD_BYTES take the codec threads (simdjson's dense parse, else orjson's full
    one): same answers, same 400s as small bodies."""
    from course_lib.serving.rest import OFFLOAD_BYTES

    rows = np.tile(X, (3000, 1))
    body = {"instances": rows.tolist()}
    assert len(str(body)) > OFFLOAD_BYTES
    url = f"{server.rest_url}/v1/models/clf:predict"
    answer = requests.post(url, json=body, timeout=60)
    assert answer.status_code == 200
    np.testing.assert_allclose(answer.json()["predictions"], expected_probabilities(rows, 1.0), rtol=1e-5)
    wrong = requests.post(url, json={"instances": np.tile(X[:, :3], (3000, 1)).tolist()}, timeout=60)
    assert wrong.status_code == 400 and "expects" in wrong.json()["error"]
    ragged_rows = [[1.0, 2.0, 3.0, 4.0]] * 3000 + [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0]]  # as many numbers
    small = requests.post(url, json={"instances": ragged_rows[-3:]}, timeout=60)
    ragged = requests.post(url, json={"instances": ragged_rows}, timeout=60)
    assert ragged.status_code == small.status_code == 400
    assert ragged.json()["error"] == small.json()["error"].replace("element: 1 ", "element: 3000 ")
    nan = requests.post(url, data='{"instances": [[NaN, 1, 2, 3]]' + " " * OFFLOAD_BYTES + "}", timeout=60)
    assert nan.status_code == 200  # NaN tokens, as TF Serving accepts them: json's parser, not orjson's


def is_live(process) -> bool:
    """Running and not a zombie (a killed process not yet reaped); False once it is gone."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def decoding_processes(server) -> list:
    """The server's live JSON decoding processes (multiprocessing's spawned workers)."""
    import psutil

    def is_decoder(child) -> bool:
        try:
            return is_live(child) and "spawn_main" in " ".join(child.cmdline())
        except psutil.Error:
            return False

    return [child for child in psutil.Process(server.process.pid).children(recursive=True) if is_decoder(child)]


def test_bodies_too_big_for_a_thread_are_parsed_in_decoding_processes_with_the_same_answers(server):
    """Bodies over PROCESS_BYTES are parsed by worker processes (json_body.py): same answers and
    errors as the server's own parse, and a killed worker costs no request."""
    from course_lib.serving.rest import PROCESS_BYTES

    url = f"{server.rest_url}/v1/models/clf:predict"
    rows = np.tile(X, (15_000, 1))
    body = json.dumps({"instances": rows.tolist()})
    assert len(body) > PROCESS_BYTES
    answer = requests.post(url, data=body, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    np.testing.assert_allclose(answer.json()["predictions"], expected_probabilities(rows, 1.0), rtol=1e-5)
    workers = decoding_processes(server)
    assert workers, "no decoding process was started for a body over PROCESS_BYTES"

    columnar = requests.post(url, data=json.dumps({"inputs": rows.tolist()}), timeout=60)
    assert columnar.status_code == 200 and len(columnar.json()["outputs"]) == len(rows)
    wrong_width = json.dumps({"instances": np.tile(X[:, :3], (20_000, 1)).tolist()})
    wrong = requests.post(url, data=wrong_width, timeout=60)
    assert wrong.status_code == 400 and "expects" in wrong.json()["error"]
    # What the workers leave to the server's own parse: literals, and both keys at once.
    literal = requests.post(url, data='{"instances": [[true, 1, 2, 3]]' + " " * PROCESS_BYTES + "}", timeout=60)
    small_literal = requests.post(url, data='{"instances": [[true, 1, 2, 3]]}', timeout=60)
    assert (literal.status_code, literal.json()) == (small_literal.status_code, small_literal.json())
    both = body[:-1] + ', "inputs": [[1, 2, 3, 4]]}'
    assert requests.post(url, data=both, timeout=60).status_code == 400

    for worker in workers:
        worker.kill()
    for _ in range(2):  # the first finds the pool broken and is parsed on a codec thread; the next, a new pool
        again = requests.post(url, data=body, timeout=60)
        assert again.status_code == 200, again.text[:300]
    assert {w.pid for w in decoding_processes(server)}.isdisjoint({w.pid for w in workers})


def test_decoding_processes_exit_when_the_server_is_killed(tmp_path):
    """A SIGKILLed server runs no cleanup: its workers must notice on their own (they hold both ends
    of their task queue, so its pipe never closes for them)."""
    import os
    import signal
    import time

    server = serve_classifier(tmp_path)
    try:
        body = json.dumps({"instances": np.tile(X, (15_000, 1)).tolist()})
        assert requests.post(f"{server.rest_url}/v1/models/clf:predict", data=body, timeout=60).status_code == 200
        workers = decoding_processes(server)
        assert workers
        os.kill(server.process.pid, signal.SIGKILL)

        def alive() -> list[int]:
            return [w.pid for w in workers if is_live(w)]

        deadline = time.monotonic() + 10
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive() == [], f"decoding processes {alive()} outlived their server by 10 s"
    finally:
        server.stop()


def test_docs_serving_md_says_what_happens_to_every_flag():
    from course_lib.paths import REPO_ROOT

    table = (REPO_ROOT / "docs" / "serving.md").read_text()
    missing = [name for name in TF_SERVING_FLAGS if f"`--{name}`" not in table]
    assert not missing, f"docs/serving.md does not list: {missing}"


# ----- error texts: TF Serving 2.20's, where its source or tests fix them ------------------------------
# Sources (tag 2.20.0 of github.com/tensorflow/serving, and the TensorFlow it builds against):
#   predict_util.cc          VerifyRequestInputsSize, PreProcessPrediction, RunPredict
#   predict_util_test.cc     InputTensorsDontMatchModelSpecInputs, PredictionInvalidTensor,
#                            InputTensorsHaveWrongType, OutputFiltersDontMatchModelSpecOutputs
#   tensorflow/cc/saved_model/util.cc   GetInputValues (called by PreProcessPrediction)
#   tensorflow/core/framework/function.cc   FunctionCallFrame::SetArgs ("Expects arg[...")
#   util/json_tensor.cc, json_tensor_test.cc   the REST body's errors
#   util/net_http/server/internal/evhttp_request.cc   gzip request bodies
# The first line of a message is TF Serving's text; a second line, where there is one, says it in
# the course's words.


def tensor(values, dtype) -> tf.Tensor:
    return tf.make_tensor_proto(values, dtype=dtype)


def feed_name(server) -> str:
    metadata = requests.get(f"{server.rest_url}/v1/models/clf/metadata", timeout=30).json()
    return metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]["name"]


def predict_error(stub, inputs: dict, output_filter=(), signature="") -> grpc.RpcError:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "clf", signature
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    request.output_filter.extend(output_filter)
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    return error.value


def test_an_input_under_another_name_gets_get_input_values_text(server, stub):
    """tensorflow/cc/saved_model/util.cc GetInputValues: the signature's alias missing from the request."""
    error = predict_error(stub, {"y": tensor(X, tf.float32)})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(error.details()).splitlines()[0] == (
        f"Signature input alias: x(feed name: {feed_name(server)}) not found in request and no default value "
        "provided. Inputs expected to be in the request {y}, or default input alias set: "
    )


@pytest.mark.parametrize(
    "value, dtype, upstream_test",
    [
        (["any_value"], tf.string, "InputTensorsHaveWrongType"),
        (True, tf.bool, "PredictionInvalidTensor"),
        (X.astype(np.float64), tf.float64, None),
        (X.astype(np.int64), tf.int64, None),
    ],
)
def test_a_wrong_dtype_gets_the_sessions_text(stub, value, dtype, upstream_test):
    """predict_util_test.cc (upstream_test): "Expects arg[0] to be float but string is provided"."""
    error = predict_error(stub, {"x": tensor(value, dtype)})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    first, second = str(error.details()).splitlines()
    assert first == f"Expects arg[0] to be float but {dtype.name.replace('float64', 'double')} is provided"
    assert "signature 'serving_default' expects float" in second


def test_extra_inputs_get_verify_request_inputs_size_text(stub):
    """predict_util_test.cc InputTensorsDontMatchModelSpecInputs."""
    error = predict_error(
        stub, {"unknown_key1": tensor(["any_value"], tf.string), "unknown_key2": tensor([1.0], tf.float32)}
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "input size does not match signature: 2!=1 len({unknown_key1,unknown_key2}) != len({x}). "
        "Sent extra: {unknown_key1,unknown_key2}. Missing but required: {x}."
    )


@pytest.mark.parametrize(
    "output_filter, text",
    [
        (
            ["output_filter"],
            "output tensor alias not found in signature: output_filter Outputs expected to be in the set {probs}.",
        ),
        (["probs", "probs"], "duplicate output tensor alias: probs"),
    ],
)
def test_output_filters_get_pre_process_prediction_texts(stub, output_filter, text):
    """predict_util_test.cc OutputFiltersDontMatchModelSpecOutputs."""
    error = predict_error(stub, {"x": tensor(X, tf.float32)}, output_filter)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, text)


def test_an_unknown_signature_gets_run_predicts_text(stub):
    """predict_util.cc RunPredict: FAILED_PRECONDITION over gRPC."""
    error = predict_error(stub, {"x": tensor(X, tf.float32)}, signature="nope")
    assert (error.code(), error.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )


@pytest.mark.parametrize(
    "body, text",
    [
        # json_tensor_test.cc SingleUnnamedTensorErrors: "Expecting tensor size", "not of expected type"
        (
            {"instances": [[1, 2, 3, 4], [1, 2, 3]]},
            (
                "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
                "Expecting tensor size: 4 but got: 3"
            ),
        ),
        (
            {"instances": [[1, 2, 3, 4], ["a", "b", "c", "d"]]},
            (
                "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
                'JSON Value: "a" Type: String is not of expected type: float'
            ),
        ),
        # json_tensor.cc FillTensorMapFromInputsMap, FillPredictRequestFromJson
        ({"inputs": {"y": X.tolist()}}, "Missing named input: x in 'inputs' object."),
        ({"instance": X.tolist()}, "Missing 'inputs' or 'instances' key"),
        (
            {"instances": [{"y": [1, 2, 3, 4]}]},
            (
                "Failed to process element: 0 key: y of 'instances' list. "
                "Error: INVALID_ARGUMENT: JSON object: does not have named input: y"
            ),
        ),
    ],
)
def test_rest_bodies_get_json_tensor_texts(server, body, text):
    answer = requests.post(f"{server.rest_url}/v1/models/clf:predict", json=body, timeout=30)
    assert (answer.status_code, answer.json()) == (400, {"error": text})


def test_gzip_bodies_are_uncompressed_as_tf_serving_does(server):
    """evhttp_request.cc: Content-Encoding gzip is uncompressed; a broken one is the client's error."""
    import gzip
    import json

    url = f"{server.rest_url}/v1/models/clf:predict"
    body = gzip.compress(json.dumps({"instances": X.tolist()}).encode())
    answer = requests.post(url, data=body, headers={"Content-Encoding": "gzip"}, timeout=30)
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["predictions"], expected_probabilities(X, 1.0), rtol=1e-5)
    broken = requests.post(url, data=body[:-8], headers={"Content-Encoding": "gzip"}, timeout=30)
    assert broken.status_code == 400 and broken.json()["error"].startswith("Failed to uncompress the gzipped body")
    bomb = gzip.compress(b" " * 70_000_000)  # 70 MB of spaces, past the 64 MiB default --max_request_bytes
    refused = requests.post(url, data=bomb, headers={"Content-Encoding": "gzip"}, timeout=30)
    assert refused.status_code == 413

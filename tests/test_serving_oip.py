"""The Open Inference Protocol v2 (KServe, Triton) on the course server's REST port.

tritonclient, the protocol's reference client, drives a real server subprocess from a venv of its
own (.oip-venv, built once from requirements-oip.txt: tritonclient pins an ml-dtypes TensorFlow
cannot use). Its answers are compared with what the models compute from their weights. The spec's
details a client library hides (empty health bodies, error objects and status codes, ignored
parameters, nested data) are checked with plain HTTP.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from serving_fixtures.models import (
    expected_probabilities,
    export_classifier,
    export_mixed,
    mixed_expected,
    write_models_config,
)

from course_lib.dev.oip_client_venv import ensure_oip_client_venv
from course_lib.serving import serve

CLIENT = Path(__file__).parent / "serving_fixtures" / "oip_client.py"
X = np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], np.float32)
WEIGHTS = np.array([[0.5, 1.5, -2.0], [1.0, 0.25, 3.0]], np.float32)
COUNTS = np.array([[1, 2, 3], [4, 5, 2**40]], np.int64)  # past int32: INT64 must stay INT64
TAGS = ["a", "bé"]

pytestmark = pytest.mark.slow  # a model server subprocess, and a venv built on the first run


@pytest.fixture(scope="module")
def client_venv():
    """The client venv, built (on the first run only) in the background while the server starts."""
    started = time.monotonic()

    def build() -> Path:
        python = ensure_oip_client_venv()
        print(f"OIP client venv ready in {time.monotonic() - started:.1f} s: {python}")
        return python

    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(build)


@pytest.fixture(scope="module")
def server(tmp_path_factory, client_venv):  # client_venv first: its build overlaps the server's start
    root = tmp_path_factory.mktemp("oip")
    export_classifier(root / "clf", 1)
    export_mixed(root / "mixed", 1)
    config = write_models_config(root, clf=root / "clf", mixed=root / "mixed")
    handle = serve(model_config_file=config, use_real_server=False, log_path=root / "server.log", timeout=180)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def client_run(server, client_venv, tmp_path_factory) -> dict:
    client_python = client_venv.result(timeout=600)
    inputs = tmp_path_factory.mktemp("oip-client") / "inputs.json"
    inputs.write_text(
        json.dumps({"x": X.tolist(), "weights": WEIGHTS.tolist(), "counts": COUNTS.tolist(), "tag": TAGS})
    )
    url = server.rest_url.removeprefix("http://")
    result = subprocess.run(
        [str(client_python), str(CLIENT), url, str(inputs)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"tritonclient run failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tritonclient_sees_a_live_ready_server_and_model_metadata(client_run):
    assert (client_run["live"], client_run["ready"], client_run["clf_ready"], client_run["clf_v1_ready"]) == (
        True,
        True,
        True,
        True,
    )
    assert client_run["unknown_ready"] is False
    assert client_run["server"]["name"] == "course_lib.serving" and client_run["server"]["extensions"] == []
    assert client_run["metadata"] == {
        "name": "mixed",
        "versions": ["1"],
        "platform": "tensorflow_savedmodel",
        "inputs": [
            {"name": "counts", "datatype": "INT64", "shape": [-1, 3]},
            {"name": "tag", "datatype": "BYTES", "shape": [-1]},
            {"name": "weights", "datatype": "FP32", "shape": [-1, 3]},
        ],
        "outputs": [
            {"name": "tagged", "datatype": "BYTES", "shape": [-1]},
            {"name": "total", "datatype": "INT64", "shape": [-1]},
            {"name": "weighted", "datatype": "FP32", "shape": [-1]},
        ],
    }
    assert client_run["clf_metadata"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]


def test_tritonclient_infers_fp32_int64_and_bytes_like_the_models_compute(client_run):
    np.testing.assert_allclose(client_run["probs"], expected_probabilities(X, 1.0), rtol=1e-5)
    mixed, expected = client_run["mixed"], mixed_expected(WEIGHTS, COUNTS, TAGS)
    assert (mixed["id"], mixed["model_name"], mixed["model_version"]) == ("req-7", "mixed", "1")
    assert mixed["outputs"] == ["tagged", "total", "weighted"]
    np.testing.assert_allclose(mixed["weighted"], expected["weighted"], rtol=1e-6)
    assert mixed["total"] == expected["total"].tolist() and mixed["total_dtype"] == "int64"
    assert mixed["weighted_dtype"] == "float32"
    assert mixed["tagged"] == list(expected["tagged"])
    assert client_run["only_total"] == ["total"]


def test_tritonclient_defaults_binary_tensors_work_too(client_run):
    """Triton's binary tensor extension for inputs: raw little-endian bytes after the JSON part."""
    expected = mixed_expected(WEIGHTS, COUNTS, TAGS)
    binary = client_run["binary"]
    np.testing.assert_allclose(binary["weighted"], expected["weighted"], rtol=1e-6)
    assert binary["total"] == expected["total"].tolist() and binary["tagged"] == list(expected["tagged"])


def test_tritonclient_gets_the_servers_errors(client_run):
    errors = client_run["errors"]
    assert errors["wrong_datatype"] == {
        "status": "400",
        "message": "input 'x' has datatype 'FP64', but the model expects FP32",
    }
    assert errors["unknown_model"]["status"] == "404" and "nope" in errors["unknown_model"]["message"]
    assert errors["unknown_metadata"]["status"] == "404"
    assert errors["wrong_shape"]["status"] == "400" and "expects [-1,4]" in errors["wrong_shape"]["message"]
    assert errors["not_a_number"] == {
        "status": "400",
        "message": "input 'x' has datatype 'BYTES', but the model expects FP32",
    }


def test_health_answers_have_empty_bodies_and_errors_are_error_objects(server):
    base = server.rest_url
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/clf/ready", "/v2/models/clf/versions/1/ready"):
        answer = requests.get(base + path, timeout=30)
        assert (answer.status_code, answer.content) == (200, b""), path
    for path, status in [
        ("/v2/models/clf/versions/9/ready", 404),
        ("/v2/models/nope", 404),
        ("/v2/models/clf/versions/x", 404),
        ("/v2/other", 404),
    ]:
        answer = requests.get(base + path, timeout=30)
        assert answer.status_code == status and set(answer.json()) == {"error"}, path
    wrong_method = requests.get(base + "/v2/models/clf/infer", timeout=30)
    assert wrong_method.status_code == 400 and "takes POST" in wrong_method.json()["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        (
            {"inputs": [{"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
            "unexpected inference input 'y'",
        ),
        ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}, "has 3 values in 'data'"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "3", 4]}]}, "must be a number"),
        (
            {
                "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
                "outputs": [{"name": "z"}],
            },
            "unexpected inference output 'z'",
        ),
        (
            {"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
            "non-negative whole numbers",
        ),
    ],
)
def test_bad_infer_requests_are_400_error_objects(server, body, message):
    answer = requests.post(server.rest_url + "/v2/models/clf/infer", json=body, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_nested_data_and_parameters_are_taken_politely(server):
    body = {
        "id": "n1",
        "parameters": {"binary_data_output": True, "whatever": 3},
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.tolist(), "parameters": {"a": 1}}],
        "outputs": [{"name": "probs", "parameters": {"binary_data": False}}],
    }
    answer = requests.post(server.rest_url + "/v2/models/clf/versions/1/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("probs", "FP32", [2, 3])
    np.testing.assert_allclose(np.reshape(output["data"], (2, 3)), expected_probabilities(X, 1.0), rtol=1e-5)


def test_a_big_body_is_decoded_off_the_event_loop_and_answers_the_same(server):
    """Bodies over rest.OFFLOAD_BYTES are decoded on the codec threads, numbers through numpy's fast path."""
    from course_lib.serving.rest import OFFLOAD_BYTES

    rows = np.tile(X, (4000, 1))
    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}
    data = json.dumps(body).encode()
    assert len(data) > OFFLOAD_BYTES
    answer = requests.post(server.rest_url + "/v2/models/clf/infer", data=data, timeout=60)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    np.testing.assert_allclose(
        np.reshape(output["data"], output["shape"]), expected_probabilities(rows, 1.0), rtol=1e-5
    )
    body["inputs"][0]["data"][5] = True  # a literal among numbers: the checking path refuses it, as for a small body
    refused = requests.post(server.rest_url + "/v2/models/clf/infer", json=body, timeout=60)
    assert refused.status_code == 400 and "must be a number" in refused.json()["error"]

"""No client input can make the course model server answer a 5xx (REST) or INTERNAL/UNKNOWN (gRPC).

A fixed seed and a fixed number of requests (tests/serving_fixtures/fuzz.py builds them): bodies
broken one mutation at a time, random JSON, huge numbers, deep nesting, wrong shapes and types,
odd content types and encodings, bad URLs, HTTP framing only a raw socket sends, and gRPC requests
whose protos disagree with the models. A failure lists every request that got a server error, and
the server must still answer a good request at the end.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time

import grpc
import numpy as np
import pytest
import requests
from serving_fixtures import fuzz
from serving_fixtures.models import expected_probabilities, serve_three_models

SEED = 20261202
REST_CASES = 1500
GRPC_CASES = 1000
MAX_REQUEST_BYTES = 1_000_000
SERVER_ERRORS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

pytestmark = pytest.mark.slow  # a model server as a subprocess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = serve_three_models(tmp_path_factory.mktemp("fuzz"), f"--max_request_bytes={MAX_REQUEST_BYTES}")
    yield handle
    handle.stop()


def assert_still_serving(server) -> None:
    x = np.array([[1, 2, 3, 4]], np.float32)
    answer = requests.post(f"{server.rest_url}/v1/models/clf:predict", json={"instances": x.tolist()}, timeout=30)
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["predictions"], expected_probabilities(x, 1.0), rtol=1e-5)


def report(failures: list[str], total: int) -> str:
    shown = "\n".join(failures[:15])
    return f"{len(failures)} of {total} requests got a server error (seed {SEED}):\n{shown}"


def test_no_rest_request_gets_a_5xx(server):
    rng = random.Random(SEED)
    failures: list[str] = []
    started = time.monotonic()
    with requests.Session() as session:
        for _ in range(REST_CASES):
            request = fuzz.rest_request(rng)
            try:
                answer = session.request(
                    request.method,
                    server.rest_url + request.path,
                    data=request.body,
                    headers=request.headers,
                    timeout=30,
                )
            except requests.ConnectionError as exc:  # the server closed on us: fine unless it died
                if server.process.poll() is not None:
                    pytest.fail(f"the server exited after {request.describe()}: {exc}")
                continue
            if answer.status_code >= 500:
                failures.append(f"{answer.status_code} {answer.text[:300]!r} <- {request.describe()}")
            elif request.method != "HEAD" and request.path.startswith("/v1/") and answer.status_code != 200:
                assert "error" in answer.json(), f"{answer.status_code} without an error body <- {request.describe()}"
    assert not failures, report(failures, REST_CASES)
    print(f"{REST_CASES} REST requests in {time.monotonic() - started:.1f} s")
    assert_still_serving(server)


def raw_status(server, data: bytes) -> bytes:
    """The status line the server sends back for raw bytes (b"" if it closes without one)."""
    host, port = server.rest_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    return received.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("data", fuzz.RAW_HTTP, ids=range(len(fuzz.RAW_HTTP)))
def test_malformed_http_gets_a_4xx_or_a_closed_connection(server, data):
    status = raw_status(server, data)
    parts = status.split()
    assert not status or (len(parts) >= 2 and parts[1][:1] in (b"1", b"2", b"4")), f"{status!r} <- {data[:200]!r}"


@pytest.fixture(scope="module")
def channel(server):
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(server.grpc_target, options=options) as channel:
        yield channel


def call_raw(channel, method: str, payload: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        call(payload, timeout=30)
    except grpc.RpcError as error:
        return error.code()  # pyright: ignore[reportAttributeAccessIssue]
    return grpc.StatusCode.OK


def test_no_grpc_request_gets_internal_or_unknown(server, channel):
    rng = random.Random(SEED)
    failures: list[str] = []
    for _ in range(GRPC_CASES):
        method, request = fuzz.grpc_request(rng)
        call = channel.unary_unary(
            method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=None
        )
        try:
            call(request, timeout=30)
        except grpc.RpcError as error:
            if error.code() in SERVER_ERRORS:  # pyright: ignore[reportAttributeAccessIssue]
                text = str(request)[:300].replace("\n", " ")
                failures.append(f"{error.code()} {error.details()!r} <- {method} {text}")  # pyright: ignore[reportAttributeAccessIssue]
    assert not failures, report(failures, GRPC_CASES)
    assert_still_serving(server)


def test_an_oversized_grpc_message_is_refused_as_resource_exhausted(server, channel):
    big = fuzz.GRPC_METHODS[fuzz.PREDICTION + "Predict"]()
    big.model_spec.name = "clf"
    big.inputs["x"].dtype = 1
    big.inputs["x"].tensor_content = b"\0" * (8 * 1024 * 1024)
    assert call_raw(channel, fuzz.PREDICTION + "Predict", big.SerializeToString()) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(server)


def test_bytes_that_are_no_protobuf_are_an_invalid_argument(server, channel):
    rng = random.Random(SEED)
    codes = {}
    for method in fuzz.GRPC_METHODS:
        payload = fuzz.garbage_protobuf(rng)
        codes[method] = call_raw(channel, method, payload)
    assert set(codes.values()) == {grpc.StatusCode.INVALID_ARGUMENT}, codes

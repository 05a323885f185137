"""Seeded generators of bad requests for the serving fuzz test (tests/test_serving_fuzz.py).

Each generator takes a `random.Random` and returns one request, so a fixed seed replays the same
run and a failure names the exact request. The requests are built from valid ones by breaking one
thing at a time (a leaf, a shape, a key, a path part, a header, a proto field) plus wholly random
values, so most of them reach deep into the server before they fail.
"""

# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

MODELS = ["clf", "reg", "multi", "", "nope", "CLF", "ü", "a/b", "%2F", "x" * 300]
SIGNATURES = ["", "serving_default", "halve", "tensorflow/serving/classify", "tensorflow/serving/regress", "nope"]
ALIASES = ["x", "a", "b", "text", "features", "inputs", "", "y", "x" * 100]
SCALARS: list[Any] = [
    None, True, False, 0, -1, 1, 1.5, -0.0, 255, 256, -129, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
    1e308, -1e308, 5e-324, "", "abc", "1.5", "NaN", "\u0000", "\ud7ff", {"b64": "aGk="}, {"b64": "!!!"},
    {"b64": 3}, {"b64": "aGk=", "x": 1}, {}, [], [[]], {"x": 1},
]  # fmt: skip
TEXT_TOKENS = [
    "NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "9" * 5000, "-" + "9" * 5000,
    "1" + "0" * 4400 + ".5", "0." + "1" * 5000, "1E+99999999999", "00", "01", "1.", ".5", "+1", "0x10",
    "true", "null", '"\\ud800"', '"\\u00"', "[", "]", "{", "}", ",", '"', "\x00", "1 2",
]  # fmt: skip
DTYPES = [v for v in types_pb2.DataType.values() if v < 100] + [101, 120, 999, -1]


@dataclass
class RestRequest:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"...(%d bytes)" % len(self.body)
        return f"{self.method} {self.path} headers={self.headers} body={body!r}"


# ----- JSON values ---------------------------------------------------------------------------------


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value: scalars from SCALARS, lists and objects up to a few levels deep."""
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        return rng.choice(SCALARS)
    if roll < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ["instances", "inputs", "signature_name", "examples", "context", *ALIASES]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def random_array(rng: random.Random, leaf=None, depth: int = 0) -> Any:
    """A nested list with a random (often ragged) shape; leaves numbers unless `leaf` gives them."""
    if depth >= rng.randrange(0, 5):
        return leaf(rng) if leaf else rng.choice([0.5, 1, -2, 3.25, 7])
    return [random_array(rng, leaf, depth + 1) for _ in range(rng.randrange(0, 4))]


def mutate(rng: random.Random, value: Any) -> Any:
    """`value` with one part replaced: a leaf, a list's length, a key, or the whole of it."""
    if isinstance(value, list) and value and rng.random() < 0.7:
        copy = list(value)
        roll = rng.random()
        index = rng.randrange(len(copy))
        if roll < 0.5:
            copy[index] = mutate(rng, copy[index])
        elif roll < 0.7:
            copy.append(copy[index])
        elif roll < 0.85:
            del copy[index]
        else:
            copy[index] = [copy[index]]
        return copy
    if isinstance(value, dict) and value and rng.random() < 0.7:
        copy = dict(value)
        key = rng.choice(list(copy))
        roll = rng.random()
        if roll < 0.6:
            copy[key] = mutate(rng, copy[key])
        elif roll < 0.8:
            copy[rng.choice([*ALIASES, "instances", "inputs", "examples"])] = copy.pop(key)
        else:
            del copy[key]
        return copy
    return rng.choice(SCALARS) if rng.random() < 0.8 else random_json(rng)


# ----- REST ----------------------------------------------------------------------------------------

VALID_BODIES: dict[str, list[Any]] = {
    "clf:predict": [
        {"instances": [[1.0, 2.0, 3.0, 4.0], [0.5, -1, 0, 2]]},
        {"inputs": [[1.0, 2.0, 3.0, 4.0]]},
        {"signature_name": "serving_default", "inputs": {"x": [[1, 2, 3, 4]]}},
        {"instances": [{"x": [1, 2, 3, 4]}]},
    ],
    "multi:predict": [
        {"instances": [{"a": [1.0, 2.0], "b": [1, 2, 3], "text": "hi"}]},
        {"inputs": {"a": [[1.0, 2.0]], "b": [[1, 2, 3]], "text": [{"b64": "aGk="}]}},
        {"signature_name": "halve", "instances": [[1.0, 2.0]]},
    ],
    "reg:predict": [{"instances": [[1.0, 2.0, 3.0]]}],
    "clf:classify": [{"examples": [{"x": [1.0, 2.0, 3.0, 4.0]}]}, {"context": {"x": 1.5}, "examples": [{"x": 2}]}],
    "reg:regress": [{"examples": [{"features": [1.0, 2.0, 3.0]}]}, {"signature_name": "nope", "examples": [{}]}],
    "clf:regress": [{"examples": [{"x": [1.0, 2.0, 3.0, 4.0]}]}],
    "multi:classify": [{"examples": [{"a": [1.0, 2.0]}]}],
}
CONTENT_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "application/octet-stream",
    "\u00e9/\u00e9".encode().decode("latin-1"),
    "",
]
OIP_BODIES: list[Any] = [
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
    {"id": "1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}],
     "outputs": [{"name": "probs", "parameters": {"binary_data": True}}], "parameters": {}},
    {"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
                {"name": "b", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 3]},
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]},
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]},
]  # fmt: skip
VERBS = ["predict", "classify", "regress", "PREDICT", "explain", ""]


def rest_path(rng: random.Random) -> tuple[str, str]:
    """(method, path) from TF Serving's URL forms with parts replaced by odd values."""
    model = rng.choice(MODELS)
    version = rng.choice(["", "/versions/1", "/versions/0", "/versions/99", "/versions/" + "9" * 30, "/versions/-1"])
    label = rng.choice(["", "", "/labels/stable", "/labels/", "/labels/%ZZ"])
    tail = version + label if rng.random() < 0.2 else version or label
    roll = rng.random()
    if roll < 0.6:
        return "POST", f"/v1/models/{model}{tail}:{rng.choice(VERBS)}"
    if roll < 0.8:
        return "GET", f"/v1/models/{model}{tail}" + rng.choice(["", "/metadata", "/metadata/x", ":predict", "/"])
    odd = [
        "/", "/v1", "/v1/models", "/v1/models/", "//v1/models/clf", "/v1/models/clf%00:predict",
        "/v1/models/%E0%A4%A:predict", "/v1/models/" + "a" * 5000, "/v2/models/clf/infer", "/v1/models/clf?x=%ZZ",
        "/v1/models/clf:predict:predict", "/V1/MODELS/CLF:PREDICT", "/v1/models/clf/versions/1/labels/x:predict",
        "/v1/models/..%2F..%2Fetc%2Fpasswd", "/metrics", "/monitoring/prometheus/metrics", "/v2", "/v2/",
        "/v2/health/live", "/v2/health/ready", "/v2/models/clf", "/v2/models/clf/versions/99999999999999999999",
        "/v2/models/clf/ready", "/v2/models/%ZZ/ready", "/v2/models/clf/versions/1/infer", "/v2/models",
    ]  # fmt: skip
    return rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]), rng.choice(odd)


def _body_text(rng: random.Random) -> bytes:
    """A body from text: valid bodies with a token spliced in, deep nesting, broken encodings."""
    roll = rng.random()
    if roll < 0.35:
        base = json.dumps(rng.choice(rng.choice(list(VALID_BODIES.values()))))
        cut = rng.randrange(len(base) + 1)
        if rng.random() < 0.5:  # replace one number with a token
            for index, char in enumerate(base):
                if char.isdigit() and index >= cut:
                    return (base[:index] + rng.choice(TEXT_TOKENS) + base[index + 1 :]).encode()
        return (base[:cut] + rng.choice(TEXT_TOKENS) + base[cut:]).encode()
    if roll < 0.5:
        depth = rng.choice([100, 1000, 5000, 100_000])
        opener, closer = rng.choice([("[", "]"), ('{"instances":', "}"), ('{"a":[', "]}")])
        return ('{"instances": ' + opener * depth + "1" + closer * depth + "}").encode()
    if roll < 0.65:
        return rng.choice(
            [
                b"",
                b" ",
                b"\xff\xfe{}",
                b'{"instances": ["\xff\xfe"]}',
                b"\xef\xbb\xbf{}",
                b"{}" * 3,
                b"\x00" * 10,
                b'{"instances": [1]} trailing',
                b'{"instances": [1],}',
                b"/*c*/{}",
                b'{"instances": "\\ud800"}',
                b'{"inputs": [1e400, -1e400]}',
                b'{"instances": [[' + b"1," * 20000 + b"1]]}",
                b'{"instances": [' + b"[1.0, 2.0, 3.0, 4.0]," * 3000 + b"[1.0, 2.0, 3.0, 4.0]]}",
                b'{"signature_name": "halve", "instances": [' + b"1" * 200 + b"]}",
                b'"just a string"',
                b"[1, 2]",
                bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
            ]
        )
    return json.dumps(random_json(rng), allow_nan=True).encode()


def rest_request(rng: random.Random) -> RestRequest:
    """One bad (or odd) REST request."""
    roll = rng.random()
    headers: dict[str, str] = {}
    if rng.random() < 0.15:
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
    if rng.random() < 0.05:
        headers["Content-Encoding"] = rng.choice(["gzip", "deflate", "br", "identity, gzip", "bogus"])
    if rng.random() < 0.05:
        headers["Origin"] = rng.choice(["http://x", "evil", ""])
    if roll < 0.55:  # a known endpoint, a body broken by one mutation
        target = rng.choice(list(VALID_BODIES))
        model, verb = target.split(":")
        body = mutate(rng, rng.choice(VALID_BODIES[target]))
        for _ in range(rng.randrange(0, 3)):
            body = mutate(rng, body)
        version = rng.choice(["", "", "/versions/1", "/labels/x"])
        return RestRequest("POST", f"/v1/models/{model}{version}:{verb}", json.dumps(body).encode(), headers)
    if roll < 0.75:
        target = rng.choice(list(VALID_BODIES))
        model, verb = target.split(":")
        return RestRequest("POST", f"/v1/models/{model}:{verb}", _body_text(rng), headers)
    if roll < 0.82:  # the Open Inference Protocol: JSON tensors, and Triton's binary ones after the JSON
        body = mutate(rng, rng.choice(OIP_BODIES))
        for _ in range(rng.randrange(0, 3)):
            body = mutate(rng, body)
        data = json.dumps(body).encode()
        if rng.random() < 0.3:
            headers["Inference-Header-Content-Length"] = rng.choice([str(len(data)), "0", "-1", "x", str(2**70)])
            data += bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 16, 40])))
        model = rng.choice(["clf", "multi", "reg", "nope"])
        path = rng.choice([f"/v2/models/{model}/infer", f"/v2/models/{model}/versions/1/infer", "/v2/models//infer"])
        return RestRequest("POST", path, data, headers)
    if roll < 0.87:  # random shapes and leaves for each input of the multi model
        leaf = rng.choice([None, lambda r: r.choice(SCALARS)])
        body = {"inputs": {name: random_array(rng, leaf) for name in rng.sample(["a", "b", "text", "x"], 3)}}
        return RestRequest("POST", "/v1/models/multi:predict", json.dumps(body).encode(), headers)
    method, path = rest_path(rng)
    body = _body_text(rng) if method not in ("GET", "HEAD") or rng.random() < 0.2 else b""
    return RestRequest(method, path, body, headers)


# Requests a client library will not send: framing errors only a raw socket can make.
RAW_HTTP = [
    b"GET /v1/models/clf HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n{}",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nContent-Encoding: deflate\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /v1/models/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/models/clf HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/models/clf HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /v1/models/clf HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n",
    b"GET v1/models/clf HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://evil/v1/models/clf HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/models/clf HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /v1/models/clf HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /v1/models/clf HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


# ----- gRPC ----------------------------------------------------------------------------------------

PREDICTION = "/tensorflow.serving.PredictionService/"
GRPC_METHODS = {
    PREDICTION + "Predict": predict_pb2.PredictRequest,
    PREDICTION + "Classify": classification_pb2.ClassificationRequest,
    PREDICTION + "Regress": regression_pb2.RegressionRequest,
    PREDICTION + "MultiInference": inference_pb2.MultiInferenceRequest,
    PREDICTION + "GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest,
    "/tensorflow.serving.ModelService/GetModelStatus": get_model_status_pb2.GetModelStatusRequest,
}


def fill_model_spec(rng: random.Random, spec) -> None:
    if rng.random() < 0.1:
        return
    spec.name = rng.choice(MODELS[:5]) if rng.random() < 0.9 else rng.choice(MODELS)
    roll = rng.random()
    if roll < 0.2:
        spec.version.value = rng.choice([0, 1, 2, -1, 2**63 - 1, -(2**63)])
    elif roll < 0.3:
        spec.version_label = rng.choice(["", "stable", "x" * 200])
    if rng.random() < 0.4:
        spec.signature_name = rng.choice(SIGNATURES)


def random_tensor(rng: random.Random) -> tensor_pb2.TensorProto:
    """A TensorProto whose dtype, shape and values disagree in the ways a buggy client makes them."""
    proto = tensor_pb2.TensorProto()
    proto.dtype = rng.choice(DTYPES) if rng.random() < 0.4 else rng.choice([1, 1, 2, 3, 7, 9, 10])
    if rng.random() < 0.9:
        for _ in range(rng.randrange(0, 4)):
            proto.tensor_shape.dim.add(size=rng.choice([1, 2, 3, 4, 0, -1, -5, 2**40, 2**62]))
    if rng.random() < 0.05:
        proto.tensor_shape.unknown_rank = True
    count = rng.choice([0, 1, 2, 3, 4, 8, 12])
    roll = rng.random()
    if roll < 0.3:
        proto.tensor_content = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 4, 8, 16, 32, 33])))
    elif roll < 0.5:
        proto.float_val.extend(rng.uniform(-10, 10) for _ in range(count))
    elif roll < 0.6:
        proto.int_val.extend(rng.randrange(-(2**31), 2**31) for _ in range(count))
    elif roll < 0.7:
        proto.int64_val.extend(rng.randrange(-(2**63), 2**63) for _ in range(count))
    elif roll < 0.8:
        proto.string_val.extend(bytes(rng.randrange(256) for _ in range(rng.randrange(8))) for _ in range(count))
    elif roll < 0.85:
        proto.bool_val.extend(rng.random() < 0.5 for _ in range(count))
    elif roll < 0.9:
        proto.half_val.extend(rng.randrange(65536) for _ in range(count))
    elif roll < 0.95:
        proto.double_val.extend(rng.uniform(-1, 1) for _ in range(count))
    return proto


def random_examples(rng: random.Random, input_proto) -> None:
    target = input_proto.example_list if rng.random() < 0.6 else input_proto.example_list_with_context
    if target is input_proto.example_list_with_context and rng.random() < 0.7:
        target.context.features.feature["x"].float_list.value.extend([1.0] * rng.randrange(0, 6))
    for _ in range(rng.randrange(0, 4)):
        example = target.examples.add()
        for _ in range(rng.randrange(0, 3)):
            feature = example.features.feature[rng.choice(ALIASES)]
            kind = rng.random()
            if kind < 0.5:
                feature.float_list.value.extend(rng.uniform(-5, 5) for _ in range(rng.choice([0, 1, 3, 4, 5])))
            elif kind < 0.75:
                feature.int64_list.value.extend(rng.randrange(-9, 9) for _ in range(rng.randrange(0, 5)))
            else:
                feature.bytes_list.value.extend(b"\xff" * rng.randrange(3) for _ in range(rng.randrange(0, 3)))
    if rng.random() < 0.05:
        input_proto.Clear()


def grpc_request(rng: random.Random) -> tuple[str, Message]:
    """(method path, request message) with fields chosen to disagree with the served models."""
    method = rng.choice(list(GRPC_METHODS))
    request = GRPC_METHODS[method]()
    if method.endswith("MultiInference"):
        for _ in range(rng.randrange(0, 3)):
            task = request.tasks.add()
            fill_model_spec(rng, task.model_spec)
            task.method_name = rng.choice(
                ["tensorflow/serving/classify", "tensorflow/serving/regress", "tensorflow/serving/predict", "", "x"]
            )
        random_examples(rng, request.input)
        return method, request
    fill_model_spec(rng, request.model_spec)
    if method.endswith("Predict"):
        for _ in range(rng.randrange(0, 4)):
            request.inputs[rng.choice(ALIASES)].CopyFrom(random_tensor(rng))
        if rng.random() < 0.2:
            request.output_filter.extend(rng.choice(["probs", "total", "half", "nope", ""]) for _ in range(2))
    elif method.endswith(("Classify", "Regress")):
        random_examples(rng, request.input)
    elif method.endswith("GetModelMetadata"):
        request.metadata_field.extend(rng.choice(["signature_def", "", "nope"]) for _ in range(rng.randrange(0, 3)))
    return method, request


def garbage_protobuf(rng: random.Random) -> bytes:
    """Bytes that are not a valid protobuf message of any kind (a truncated varint, a bad wire type)."""
    return rng.choice(
        [
            b"\x0a\xff\xff\xff\xff\xff",  # field 1, length-delimited, a length running past the end
            b"\x08",  # field 1, varint, then nothing
            b"\x0f\x00",  # wire type 7: not a protobuf wire type
            b"\x0a\x06\x0a\x03clf",  # a model_spec whose length says 6 bytes where 5 follow
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + b"\x0a\xff\xff\xff\x0f",
        ]
    )

"""The Open Inference Protocol v2 (KServe, Triton) over REST, next to TF Serving's API on the same port.

Paths, bodies and status codes follow the protocol's REST spec (kserve/open-inference-protocol,
`specification/protocol/inference_rest.md`):

    GET  /v2                                               server metadata
    GET  /v2/health/live, /v2/health/ready                 200 or 4xx, empty body
    GET  /v2/models/{name}[/versions/{v}]                  model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready            200 or 4xx, empty body
    POST /v2/models/{name}[/versions/{v}]/infer            JSON tensors in, JSON tensors out

Models come from the same registry as /v1 and run their `serving_default` signature through the
same InferenceService (batching, metrics). Errors are `{"error": "..."}`: 404 for a model or
version that is not there, 400 for a request the server cannot take. Request and tensor
`parameters` are accepted and ignored, except `binary_data_size`: inputs may come as raw bytes
after the JSON (Triton's binary tensor extension, what tritonclient sends by default). Outputs are
always JSON, whatever `binary_data` asks: tritonclient reads both.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import functools
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from tensorflow.core.framework import types_pb2

from course_lib.serving.errors import ServingError, invalid_argument, not_found
from course_lib.serving.servable import DEFAULT_SIGNATURE, ServableVersion, Signature, TensorSpecInfo
from course_lib.serving.service import InferenceService

MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?")
SERVER_NAME = "course_lib.serving"
PLATFORM = "tensorflow_savedmodel"  # Triton's name for a TensorFlow SavedModel

# The protocol's tensor datatypes for TensorFlow's dtypes (inference_rest.md, "Tensor Data Types").
DATATYPES = {
    types_pb2.DT_BOOL: "BOOL",
    types_pb2.DT_UINT8: "UINT8",
    types_pb2.DT_UINT16: "UINT16",
    types_pb2.DT_UINT32: "UINT32",
    types_pb2.DT_UINT64: "UINT64",
    types_pb2.DT_INT8: "INT8",
    types_pb2.DT_INT16: "INT16",
    types_pb2.DT_INT32: "INT32",
    types_pb2.DT_INT64: "INT64",
    types_pb2.DT_HALF: "FP16",
    types_pb2.DT_FLOAT: "FP32",
    types_pb2.DT_DOUBLE: "FP64",
    types_pb2.DT_STRING: "BYTES",
    types_pb2.DT_BFLOAT16: "BF16",
}
NUMPY_DATATYPES = {
    "b": "BOOL",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
}


class OipResponse:
    """What a /v2 handler answers: an HTTP status and a JSON body (None: an empty body)."""

    def __init__(self, status: int, body: Any = None, model: str = "", grpc_status: str = "OK"):
        self.status = status
        self.body = body
        self.model = model
        self.grpc_status = grpc_status

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        return orjson.dumps(self.body, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(error: ServingError, model: str = "") -> OipResponse:
    """{"error": ...}: 404 when the model or version is not there, else 400 unless the server failed."""
    status = error.http_status
    if status not in (404, 413) and status < 500:
        status = 400
    return OipResponse(status, {"error": error.message}, model, error.code.name)


def datatype_of(spec: TensorSpecInfo) -> str:
    return DATATYPES.get(spec.dtype) or str(types_pb2.DataType.Name(spec.dtype)).removeprefix("DT_")


def tensor_metadata(spec: TensorSpecInfo) -> dict:
    shape = [-1] if spec.shape is None else [-1 if d is None else d for d in spec.shape]
    return {"name": spec.alias, "datatype": datatype_of(spec), "shape": shape}


class OipApi:
    """Handlers for /v2 paths over an InferenceService."""

    def __init__(
        self,
        service: InferenceService,
        off_loop: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
        offload_bytes: int = 64 * 1024,
    ):
        self.service = service
        self.off_loop = off_loop  # runs CPU work on other threads: big bodies must not stall the loop
        self.offload_bytes = offload_bytes

    async def answer(self, method: str, path: str, body: bytes, header_length: str | None = None) -> OipResponse:
        """Route one request; every failure becomes an OipResponse, never an exception.

        `header_length`: the `Inference-Header-Content-Length` header of Triton's binary tensor
        extension (the JSON part's size; raw tensor bytes follow it), None without one.
        """
        try:
            return await self._route(method, path, body, header_length)
        except ServingError as error:
            return error_response(error, _model_of(path))

    async def _route(self, method: str, path: str, body: bytes, header_length: str | None) -> OipResponse:
        if path in ("/v2", "/v2/"):
            _expect(method, "GET", path)
            return OipResponse(200, {"name": SERVER_NAME, "version": _version(), "extensions": []})
        if path == "/v2/health/live":
            _expect(method, "GET", path)
            return OipResponse(200)
        if path == "/v2/health/ready":
            _expect(method, "GET", path)
            return OipResponse(200) if self._all_ready() else OipResponse(400, None, grpc_status="UNAVAILABLE")
        match = MODEL_PATH.fullmatch(path)
        if match is None:
            raise not_found(
                f"Not found: {method} {path}. The Open Inference Protocol paths are /v2/health/live, "
                "/v2/health/ready and /v2/models/{name}[/versions/{version}][/ready|/infer]"
            )
        name, version_text, action = match.groups()
        model = self._resolve(name, version_text)
        if action == "/infer":
            _expect(method, "POST", path)
            return await self._infer(model, body, header_length)
        _expect(method, "GET", path)
        if action == "/ready":
            return OipResponse(200, None, model.name)
        return OipResponse(200, self._metadata(model), model.name)

    def _all_ready(self) -> bool:
        registry = self.service.registry
        for name in registry.model_names():
            try:
                registry.resolve(name)
            except ServingError:
                return False
        return True

    def _resolve(self, name: str, version_text: str | None) -> ServableVersion:
        from urllib.parse import unquote

        name = unquote(name)
        version = None
        if version_text is not None:
            if not version_text.isdigit() or int(version_text) >= 2**63:
                raise not_found(f"Model {name} has no version {version_text!r}: versions are whole numbers")
            version = int(version_text)
        try:
            return self.service.registry.resolve(name, version=version)
        except ServingError as error:
            if error.code.name == "NOT_FOUND":
                which = f"version {version} of model {name}" if version is not None else f"model {name}"
                raise not_found(f"Request for unknown model: {which} is not loaded ({error.message})") from None
            raise

    def _signature(self, model: ServableVersion) -> Signature:
        signature = model.signatures.get(DEFAULT_SIGNATURE)
        if signature is None or signature.function is None:
            raise invalid_argument(
                f"Model {model.name} has no {DEFAULT_SIGNATURE!r} signature: the Open Inference Protocol "
                "runs that one (use /v1/models/...:predict with signature_name for the others)"
            )
        return signature

    def _metadata(self, model: ServableVersion) -> dict:
        signature = self._signature(model)
        versions = [
            str(status.version)
            for status in self.service.registry.version_statuses(model.name)
            if status.state == "AVAILABLE"
        ]
        return {
            "name": model.name,
            "versions": versions,
            "platform": PLATFORM,
            "inputs": [tensor_metadata(spec) for _, spec in sorted(signature.inputs.items())],
            "outputs": [tensor_metadata(spec) for _, spec in sorted(signature.outputs.items())],
        }

    async def _infer(self, model: ServableVersion, body: bytes, header_length: str | None) -> OipResponse:
        decode = functools.partial(self._decode_infer, model, body, header_length)
        big = self.off_loop is not None and len(body) > self.offload_bytes
        request, signature, inputs, wanted = await self.off_loop(decode) if big and self.off_loop else decode()
        outputs = await self.service.run(model, signature, inputs, wanted)
        answer: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version)}
        if "id" in request:
            answer["id"] = request["id"]
        answer["outputs"] = [_response_output(name, outputs[name]) for name in wanted]
        return OipResponse(200, answer, model.name)

    def _decode_infer(self, model: ServableVersion, body: bytes, header_length: str | None):
        """An infer body to (request, signature, numpy inputs, output names): CPU work, loop or thread."""
        json_part, binary = _split_body(body, header_length)
        request = _parse_request(json_part)
        signature = self._signature(model)
        literals = b"true" in json_part or b"false" in json_part
        inputs = _request_inputs(request, signature, BinaryReader(binary), literals)
        return request, signature, inputs, _requested_outputs(request, signature)


# ----- requests ------------------------------------------------------------------------------------


def _expect(method: str, wanted: str, path: str) -> None:
    if method != wanted:
        raise invalid_argument(f"{path} takes {wanted}, not {method}")


def _model_of(path: str) -> str:
    match = MODEL_PATH.fullmatch(path)
    return match.group(1) if match else ""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tensorflow")
    except PackageNotFoundError:
        return "unknown"


def _parse_request(body: bytes) -> dict:
    if not body.strip():
        raise invalid_argument("The inference request is empty: send a JSON object with an 'inputs' list")
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_argument(f"The inference request is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise invalid_argument("The inference request must be a JSON object with an 'inputs' list")
    if "id" in request and not isinstance(request["id"], str):
        raise invalid_argument("'id' must be a string")
    for key in ("parameters",):
        if key in request and not isinstance(request[key], dict):
            raise invalid_argument(f"'{key}' must be a JSON object")
    return request


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, raw tensor bytes) of an infer body; all JSON unless the binary header is there."""
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise invalid_argument(
            f"Inference-Header-Content-Length is {header_length!r}: it must be the size of the body's JSON "
            f"part, a whole number no larger than the body ({len(body)} bytes)"
        )
    size = int(header_length)
    return body[:size], body[size:]


class BinaryReader:
    """The raw tensor bytes after the JSON part, handed out in the order of the inputs that use them."""

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.offset = 0

    def take(self, size: int, name: str) -> bytes:
        if self.offset + size > len(self.data):
            raise invalid_argument(
                f"input '{name}' says binary_data_size {size}, but only {len(self.data) - self.offset} "
                "bytes of binary data are left in the body"
            )
        chunk = bytes(self.data[self.offset : self.offset + size])
        self.offset += size
        return chunk

    def check_all_used(self) -> None:
        if self.offset != len(self.data):
            raise invalid_argument(
                f"the body holds {len(self.data) - self.offset} bytes of binary data no input claims"
            )


def _request_inputs(
    request: dict, signature: Signature, binary: BinaryReader, literals: bool = True
) -> dict[str, np.ndarray]:
    entries = request.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise invalid_argument("'inputs' must be a non-empty list of tensors ({name, shape, datatype, data})")
    arrays: dict[str, np.ndarray] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise invalid_argument(f"inputs[{index}] must be a JSON object with name, shape, datatype and data")
        name = entry.get("name")
        if not isinstance(name, str):
            raise invalid_argument(f"inputs[{index}] has no 'name' string")
        if name in arrays:
            raise invalid_argument(f"input '{name}' is given twice")
        spec = signature.inputs.get(name)
        if spec is None:
            raise invalid_argument(f"unexpected inference input '{name}': the model expects {sorted(signature.inputs)}")
        arrays[name] = _input_array(entry, spec, binary, literals)
    binary.check_all_used()
    missing = sorted(set(signature.inputs) - set(arrays))
    if missing:
        raise invalid_argument(f"expected inputs {sorted(signature.inputs)}, missing {missing}")
    return arrays


def _input_array(entry: dict, spec: TensorSpecInfo, binary: BinaryReader, literals: bool = True) -> np.ndarray:
    """One request input as numpy; `literals`: the body holds true/false, which numpy would take as numbers."""
    name = spec.alias
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid_argument(f"input '{name}': 'parameters' must be a JSON object")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise invalid_argument(f"input '{name}': 'shape' must be a list of non-negative whole numbers")
    want = datatype_of(spec)
    datatype = entry.get("datatype")
    if datatype != want:
        raise invalid_argument(f"input '{name}' has datatype {datatype!r}, but the model expects {want}")
    count = math.prod(shape)
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise invalid_argument(f"input '{name}': binary_data_size must be a non-negative whole number")
        return _binary_array(binary.take(size, name), spec, name, count).reshape(shape)
    if "data" not in entry:
        raise invalid_argument(f"input '{name}' has no 'data'")
    fast = _fast_array(entry["data"], spec, count, literals)
    if fast is not None:
        return fast.reshape(shape)
    flat = _flatten(entry["data"], name, limit=count)
    if len(flat) != count:
        raise invalid_argument(f"input '{name}' has {len(flat)} values in 'data' but its shape {shape} holds {count}")
    return _typed_array(flat, spec, name).reshape(shape)


_FAST_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}  # numpy kinds each target kind takes as is


def _fast_array(data: Any, spec: TensorSpecInfo, count: int, literals: bool) -> np.ndarray | None:
    """numpy's own conversion when `data` is plainly numbers of the right kind and count, else None
    (the checking path then says what is wrong). An image's 150,000 values take milliseconds."""
    target = spec.numpy_dtype
    if spec.dtype == types_pb2.DT_STRING or (literals and target.kind != "b"):
        return None
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.size != count or array.dtype.kind not in _FAST_KINDS.get(target.kind, ""):
        return None
    if target.kind in "iu" and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            return None
    return array.astype(target, copy=False).ravel()


def _binary_array(raw: bytes, spec: TensorSpecInfo, name: str, count: int) -> np.ndarray:
    """Triton's binary tensor layout: little-endian values, row-major; BYTES as 4-byte length + bytes."""
    if spec.dtype == types_pb2.DT_STRING:
        values: list[bytes] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise invalid_argument(f"input '{name}': BYTES binary data ends inside a 4-byte length")
            length = int.from_bytes(raw[offset : offset + 4], "little")
            offset += 4
            if offset + length > len(raw):
                raise invalid_argument(f"input '{name}': a BYTES element runs past the end of its binary data")
            values.append(raw[offset : offset + length])
            offset += length
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        dtype = spec.numpy_dtype.newbyteorder("<")
        if len(raw) % dtype.itemsize:
            raise invalid_argument(f"input '{name}': {len(raw)} bytes is not a whole number of {datatype_of(spec)}")
        array = np.frombuffer(raw, dtype=dtype).astype(spec.numpy_dtype)
    if array.size != count:
        raise invalid_argument(f"input '{name}' has {array.size} values in its binary data but its shape holds {count}")
    return array


def _flatten(data: Any, name: str, limit: int) -> list:
    """The values of a nested or flat JSON list, row-major, without recursion; stops past `limit`."""
    if not isinstance(data, list):
        data = [data]
    flat: list = []
    stack = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
            if len(flat) > limit:
                break
    return flat


_END = object()


def _typed_array(flat: list, spec: TensorSpecInfo, name: str) -> np.ndarray:
    datatype = datatype_of(spec)
    if spec.dtype == types_pb2.DT_STRING:
        if not all(isinstance(v, str) for v in flat):
            raise invalid_argument(f"input '{name}' is BYTES: every value in 'data' must be a string")
        array = np.empty(len(flat), dtype=object)
        array[:] = [v.encode("utf-8") for v in flat]
        return array
    if spec.dtype == types_pb2.DT_BOOL:
        if not all(isinstance(v, bool) for v in flat):
            raise invalid_argument(f"input '{name}' is BOOL: every value in 'data' must be true or false")
        return np.array(flat, dtype=bool)
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in flat):
        raise invalid_argument(f"input '{name}' is {datatype}: every value in 'data' must be a number")
    dtype = spec.numpy_dtype
    if dtype.kind in "iu":
        if any(isinstance(v, float) for v in flat):
            raise invalid_argument(f"input '{name}' is {datatype}: every value in 'data' must be a whole number")
        info = np.iinfo(dtype)
        if flat and (min(flat) < info.min or max(flat) > info.max):
            raise invalid_argument(f"input '{name}' is {datatype}: values must lie in {info.min}..{info.max}")
        return np.array(flat, dtype=dtype)
    try:
        with np.errstate(over="ignore"):
            return np.array(flat, dtype=dtype)
    except OverflowError:
        raise invalid_argument(f"input '{name}' is {datatype}: a value in 'data' is too large") from None


def _requested_outputs(request: dict, signature: Signature) -> tuple[str, ...]:
    entries = request.get("outputs")
    if entries is None:
        return tuple(sorted(signature.outputs))
    if not isinstance(entries, list):
        raise invalid_argument("'outputs' must be a list of {name} objects")
    names: list[str] = []
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise invalid_argument(f"outputs[{index}] has no 'name' string")
        if name not in signature.outputs:
            raise invalid_argument(
                f"unexpected inference output '{name}': the model's outputs are {sorted(signature.outputs)}"
            )
        if name in names:
            raise invalid_argument(f"output '{name}' is requested twice")
        names.append(name)
    return tuple(names) or tuple(sorted(signature.outputs))


# ----- responses -----------------------------------------------------------------------------------


def _response_output(name: str, value: np.ndarray) -> dict:
    value = np.asarray(value)
    if value.dtype.kind in "OSU":
        datatype = "BYTES"
        data: Any = [
            v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in value.ravel().tolist()
        ]
    else:
        key = "b" if value.dtype.kind == "b" else f"{value.dtype.kind}{value.dtype.itemsize}"
        datatype = NUMPY_DATATYPES.get(key, str(value.dtype).upper())
        data = np.ascontiguousarray(value.ravel())
        if value.dtype == np.float16:
            data = data.astype(np.float32)
    return {"name": name, "datatype": datatype, "shape": list(value.shape), "data": data}

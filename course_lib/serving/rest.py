"""The REST API of TF Serving (`api_rest.md`) on aiohttp.

Same paths (matched with TF Serving's own regular expressions), same JSON bodies, same error body
`{"error": "..."}` and the same HTTP status for each canonical error code. Every failure becomes
such an answer; nothing a client sends can stop the server.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import grpc
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    regression_pb2,
)

from course_lib.serving import collector, json_body, observe, oip, tensors
from course_lib.serving.errors import ServingError, invalid_argument
from course_lib.serving.service import SIGNATURE_DEF_FIELD, InferenceService, rest_model_spec

log = logging.getLogger("course_lib.serving")

# The regular expressions of TF Serving's http_rest_api_util.cc (RE2 (?i) = case-insensitive).
API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
INT64_MAX = 2**63 - 1
JSON_TYPE = "application/json"


def _json_response(text: str, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=text.encode("utf-8"), status=status, content_type=JSON_TYPE, headers=headers)


GRPC_STATUS = "grpc_status"  # the status name an error response carries for metrics (aiohttp's per-response dict)


def _error_response(error: ServingError, headers: dict | None = None) -> web.Response:
    response = _json_response(tensors.error_json(error.message), error.http_status, headers)
    response[GRPC_STATUS] = error.code.name
    return response


def parse_model_path(method: str, path: str):
    """(name, version, label, verb, subresource) of a /v1/models path, or None (ParseModelInfo)."""
    if method == "POST":
        match = PREDICTION_PATH.fullmatch(path)
        if not match:
            return None
        name, version_text, label, verb = match.groups()
        subresource = None
    elif method == "GET":
        match = STATUS_PATH.fullmatch(path)
        if not match:
            return None
        name, version_text, label, subresource = match.groups()
        verb = None
    else:
        return None
    name = unquote(name) if name else ""
    label = unquote(label) if label else None
    version = None
    if version_text:
        version = int(version_text)
        if version > INT64_MAX:
            raise invalid_argument(f"Failed to convert version: {version_text} to numeric.")
    return name, version, label, verb, subresource


def status_json(response: get_model_status_pb2.GetModelStatusResponse) -> str:
    return json_format.MessageToJson(response, always_print_fields_with_no_presence=True)


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
    """The metadata JSON exactly as TF Serving assembles it (model_spec + unpacked signature_def)."""
    spec = json_format.MessageToJson(
        response.model_spec, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_defs)
    defs = json_format.MessageToJson(
        signature_defs, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return '{\n"model_spec":' + spec + ',\n"metadata": {"signature_def": ' + defs + "}\n}\n"


# Bodies (bytes) and outputs (values) larger than these are decoded/encoded off the event loop. Small
# requests stay on it: a thread hop costs more than parsing a few hundred bytes.
OFFLOAD_BYTES = 64 * 1024
OFFLOAD_VALUES = 16 * 1024
# Big predict bodies are first tried as one numeric list (json_body.parse_with_dense_value); those
# larger than this in decoding processes: even simdjson holds the interpreter lock for 5 ms on a 3 MB
# image, which no thread can share with the loop.
PROCESS_BYTES = 512 * 1024
DECODING_PROCESSES = 2  # as many as the codec threads: two images parsed at once, as before them


class RestApi:
    """aiohttp handlers for /v1/models/... backed by an InferenceService."""

    def __init__(
        self,
        service: InferenceService,
        *,
        timeout_ms: int = 30000,
        max_body_bytes: int,
        enable_cors: bool = False,
        metrics_path: str | None = None,
    ):
        self.service = service
        self.oip = oip.OipApi(service, self._off_loop, OFFLOAD_BYTES)  # Open Inference Protocol v2 under /v2
        self.metrics_path = metrics_path  # Prometheus text here (--monitoring_config_file), else 404
        self._codec = ThreadPoolExecutor(2, thread_name_prefix="rest-json")
        self._decoders = json_body.DecodingProcesses(DECODING_PROCESSES, fallback=self._codec)
        self.timeout_ms = timeout_ms
        self.timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self.max_body_bytes = max_body_bytes
        self.cors_headers = (
            {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "POST, GET",
                "Access-Control-Allow-Headers": "Content-Type",
            }
            if enable_cors
            else None
        )

    def make_app(self) -> web.Application:
        # aiohttp's own limit is set above ours so that our handler, not aiohttp, words the error; and
        # the body is read undecoded: aiohttp's decoders answer a bad gzip body with a 500, or with a
        # 400 it never sends on a kept-alive connection (aiohttp 3.14), so _read_body decodes it
        app = web.Application(client_max_size=self.max_body_bytes + 1, handler_args={"auto_decompress": False})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        self._decoders.close()

    async def handle(self, request: web.Request) -> web.Response:
        path = request.raw_path.split("?", 1)[0]
        if path == "/v2" or path.startswith("/v2/"):
            return await self._answer_oip(request, path)
        observer = self.service.observer
        if self.metrics_path and path == self.metrics_path and observer is not None:
            return web.Response(body=observer.exposition(), headers={"Content-Type": observe.CONTENT_TYPE})
        if observer is None:
            return await self._answer(request, path)
        started = time.perf_counter()
        response = await self._answer(request, path)
        parsed = parse_model_path(request.method, path) if API_PATH.fullmatch(path) else None
        model, verb = (parsed[0], parsed[3]) if parsed else ("", None)
        api = verb or ("GetModelMetadata" if parsed and parsed[4] == "metadata" else "GetModelStatus")
        status = response.get(GRPC_STATUS, "OK" if response.status == 200 else "NOT_FOUND")
        observer.request(model, api, "REST", status, time.perf_counter() - started, f"{request.method} {path}")
        return response

    async def _answer(self, request: web.Request, path: str) -> web.Response:
        if not API_PATH.fullmatch(path):
            return _json_response(
                tensors.error_json(f"Not found: {request.method} {path}. The API lives under /v1/models/..."), 404
            )
        try:
            if request.method == "OPTIONS":
                return self._preflight(request)
            body = await self._read_body(request)
            work = self._dispatch(request.method, path, body)
            text = await (asyncio.wait_for(work, self.timeout) if self.timeout else work)
            return _json_response(text, 200, self.cors_headers)
        except ServingError as error:
            if error.http_status >= 500:
                log.warning("REST %s %s failed: %s", request.method, path, error)
            return _error_response(error, self.cors_headers)
        except RecursionError:  # only a client's deeply nested JSON recurses this far
            error = invalid_argument("JSON Parse error: the document is nested too deeply")
            return _error_response(error, self.cors_headers)
        except TimeoutError:
            error = ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"Request exceeded the --rest_api_timeout_in_ms deadline of {self.timeout_ms} ms",
            )
            return _error_response(error, self.cors_headers)
        except Exception as exc:  # last line of defence: answer 500 and keep serving
            log.exception("Unexpected error on REST %s %s", request.method, path)
            error = ServingError(grpc.StatusCode.INTERNAL, f"Internal error: {type(exc).__name__}: {exc}")
            return _error_response(error, self.cors_headers)

    async def _answer_oip(self, request: web.Request, path: str) -> web.Response:
        """An Open Inference Protocol v2 request (oip.py), counted in the metrics like /v1 ones."""
        started = time.perf_counter()
        try:
            if request.method == "OPTIONS":  # a browser's CORS preflight, as for /v1
                return self._preflight(request)
            body = await self._read_body(request)
            header_length = request.headers.get("Inference-Header-Content-Length")
            work = self.oip.answer(request.method, path, body, header_length)
            answer = await (asyncio.wait_for(work, self.timeout) if self.timeout else work)
        except ServingError as error:
            answer = oip.error_response(error)
        except TimeoutError:
            error = ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"Request exceeded the --rest_api_timeout_in_ms deadline of {self.timeout_ms} ms",
            )
            answer = oip.error_response(error)
        except Exception as exc:  # last line of defence: answer 500 and keep serving
            log.exception("Unexpected error on REST %s %s", request.method, path)
            answer = oip.error_response(ServingError(grpc.StatusCode.INTERNAL, f"Internal error: {exc!r}"))
        if self.service.observer is not None:
            api = "ModelInfer" if path.endswith("/infer") else "ModelMetadata"
            seconds = time.perf_counter() - started
            self.service.observer.request(
                answer.model, api, "REST", answer.grpc_status, seconds, f"{request.method} {path}"
            )
        if answer.body is None:
            return web.Response(status=answer.status, headers=self.cors_headers)
        return web.Response(
            body=answer.body_bytes(), status=answer.status, content_type=JSON_TYPE, headers=self.cors_headers
        )

    def _preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        if not re.search(r"https?://", origin):
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, "Origin header is missing in CORS preflight")
        return web.Response(status=200, headers=self.cors_headers)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(request.content_length, limit)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(None, limit) from None
        except RequestPayloadError as exc:  # a chunked body that breaks off or lies about its sizes
            raise invalid_argument(f"Cannot read the request body: {exc}") from None
        if len(body) > limit:
            raise _too_large(len(body), limit)
        if "gzip" in request.headers.get("Content-Encoding", "").lower():
            body = gunzip_body(body, limit)
        return body

    async def _dispatch(self, method: str, path: str, body: bytes) -> str:
        parsed = parse_model_path(method, path)
        if parsed is None:
            raise invalid_argument(f"Malformed request: {method} {path}")
        name, version, label, verb, subresource = parsed
        if method == "POST":
            if verb == "predict":
                return await self._predict(name, version, label, body)
            if verb == "classify":
                return await self._classify(name, version, label, body)
            if verb == "regress":
                return await self._regress(name, version, label, body)
            raise invalid_argument(f"Malformed request: {method} {path}")
        if not name:
            raise invalid_argument("Missing model name in request.")
        spec = rest_model_spec(name, version, label)
        if subresource == "metadata":
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF_FIELD])
            request.model_spec.CopyFrom(spec)
            return metadata_json(self.service.metadata(request))
        if subresource is not None:
            raise invalid_argument(f"Malformed request: {method} {path}")
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.CopyFrom(spec)
        return status_json(self.service.status(request))

    async def _predict(self, name: str, version: int | None, label: str | None, body: bytes) -> str:
        spec = rest_model_spec(name, version, label)
        big = len(body) > OFFLOAD_BYTES
        decode = functools.partial(self._decode_predict, spec, body)
        decoded = await self._decode_dense(spec, body) if big else None
        model, signature, inputs, request_format = decoded or (await self._off_loop(decode) if big else decode())
        outputs = await self.service.run(model, signature, inputs, tuple(signature.outputs))
        encode = functools.partial(tensors.predict_response_json, outputs, request_format)
        if big or sum(value.size for value in outputs.values()) > OFFLOAD_VALUES:
            return await self._off_loop(encode)
        return encode()

    async def _decode_dense(self, spec, body: bytes):
        """A big predict body whose tensor is one numeric list, parsed straight into an array (by a
        decoding process if it is very big); None when it needs the full parse."""
        if len(body) > PROCESS_BYTES:
            doc = await self._decoders.parse(body)
        else:
            doc = await self._off_loop(functools.partial(json_body.parse_with_dense_value, body))
        if doc is None:
            return None
        try:
            return self._decode_predict(spec, body, doc)
        except tensors.FullParseNeededError:
            return None

    def _decode_predict(self, spec, body: bytes, doc: dict | None = None):
        """A predict body to (model, signature, numpy inputs, row/columnar): pure CPU work, loop or thread.

        `doc` is the dense parse, which it makes only of bodies whose list holds no true/false: the
        3 MB body is not scanned for them again on the event loop."""
        has_literals = doc is None and (b"true" in body or b"false" in body)
        doc = tensors.parse_json_object(body) if doc is None else doc
        signature_name = tensors.signature_name_from_json(doc)
        model = self.service.resolve(spec)
        signature = self.service.predict_signature(model, signature_name, rest=True)
        inputs, request_format = tensors.predict_inputs_from_json(doc, signature.inputs, body_has_literals=has_literals)
        return model, signature, inputs, request_format

    async def _off_loop(self, work):
        """Run JSON work on the codec threads: one image request must not stall every small one.

        With the garbage collector paused (collector.py): a big body's parsed lists otherwise set
        off full collections that cost ten times the parse."""
        return await asyncio.get_running_loop().run_in_executor(self._codec, collector.paused(work))

    async def _classify(self, name: str, version: int | None, label: str | None, body: bytes) -> str:
        request = _example_request(classification_pb2.ClassificationRequest(), name, version, label, body)
        response = await self.service.classify(request)
        return tensors.classification_result_json(response.result)

    async def _regress(self, name: str, version: int | None, label: str | None, body: bytes) -> str:
        request = _example_request(regression_pb2.RegressionRequest(), name, version, label, body)
        response = await self.service.regress(request)
        return tensors.regression_result_json(response.result)


def _example_request(request, name: str, version: int | None, label: str | None, body: bytes):
    """A Classify or Regress request filled from a REST body: model spec, signature and examples."""
    doc = tensors.parse_json_object(body)
    request.model_spec.CopyFrom(rest_model_spec(name, version, label, tensors.signature_name_from_json(doc)))
    tensors.fill_input_from_json(doc, request.input)
    return request


def gunzip_body(body: bytes, limit: int) -> bytes:
    """A gzip body uncompressed, as TF Serving does for `Content-Encoding: gzip` (evhttp_request.cc).

    Bounded by `limit` uncompressed bytes, so a small bomb cannot fill the memory. Other encodings
    are passed on as they are, as there.
    """
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise invalid_argument(f"Failed to uncompress the gzipped body: {exc}") from None
    if len(data) > limit:
        raise _too_large(None, limit)
    if not decoder.eof:
        raise invalid_argument("Failed to uncompress the gzipped body: it is cut short")
    return data


def _too_large(size: int | None, limit: int) -> ServingError:
    got = f"{size} bytes" if size is not None else "more"
    return ServingError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"Request body is too large: {got}, the limit is {limit} bytes (--max_request_bytes). "
        "Send fewer instances per request, or use gRPC with binary tensors for large inputs.",
        http_status=413,
    )

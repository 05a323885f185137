"""Clients for TF Serving's REST and gRPC APIs, and `wait_for_server`.

They work the same against `tensorflow_model_server` and the course's server. Failures raise
ServingError (a CourseError) carrying the server's own message and status code, and a server that
cannot be reached says so in words, instead of a bare "connection refused".
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import numpy as np
import requests

from course_lib.errors import CourseError
from course_lib.serving.errors import ServingError

_CODE_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _json_default(value: Any):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def model_path(model_name: str, version: int | None = None, label: str | None = None) -> str:
    """`/v1/models/NAME[/versions/V|/labels/L]`."""
    if version is not None and label is not None:
        raise CourseError("Give a version or a label, not both")
    path = f"/v1/models/{quote(model_name, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{quote(label, safe='')}"
    return path


class RestClient:
    """TF Serving's REST API: `status`, `metadata`, `predict`, `classify`, `regress`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8501",
        model_name: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self.session = session or requests.Session()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _name(self, model_name: str | None) -> str:
        name = model_name or self.model_name
        if not name:
            raise CourseError("No model name: pass model_name=... here or to RestClient(...)")
        return name

    def _call(self, method: str, path: str, payload: Any = None) -> dict:
        url = self.base_url + path
        data = None if payload is None else json.dumps(payload, default=_json_default).encode("utf-8")
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                timeout=self.timeout,
                headers={"Content-Type": "application/json"} if data else None,
            )
        except requests.ConnectionError as exc:
            raise CourseError(
                f"Cannot reach the model server at {self.base_url}: is it running, on this port? ({type(exc).__name__})"
            ) from None
        except requests.Timeout:
            raise ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"No answer from {url} within {self.timeout} s"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            message = body.get("error") if isinstance(body, dict) and "error" in body else response.text[:300]
            code = _CODE_BY_HTTP_STATUS.get(response.status_code, grpc.StatusCode.UNKNOWN)
            raise ServingError(
                code, f"HTTP {response.status_code} from {method} {path}: {message}", http_status=response.status_code
            )
        if not isinstance(body, dict):
            raise ServingError(grpc.StatusCode.UNKNOWN, f"{method} {path} answered something that is not JSON")
        return body

    def status(self, model_name: str | None = None, *, version: int | None = None, label: str | None = None) -> dict:
        """GET /v1/models/NAME: `{"model_version_status": [...]}`."""
        return self._call("GET", model_path(self._name(model_name), version, label))

    def metadata(self, model_name: str | None = None, *, version: int | None = None, label: str | None = None) -> dict:
        """GET /v1/models/NAME/metadata: model_spec and signature_def."""
        return self._call("GET", model_path(self._name(model_name), version, label) + "/metadata")

    def predict(
        self,
        instances: Any = None,
        *,
        inputs: Any = None,
        model_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        signature_name: str | None = None,
    ) -> dict:
        """POST :predict with `instances` (row format) or `inputs` (columnar); numpy arrays are fine."""
        if (instances is None) == (inputs is None):
            raise CourseError("Pass exactly one of instances=... (row format) or inputs=... (columnar format)")
        payload: dict[str, Any] = {"instances": instances} if instances is not None else {"inputs": inputs}
        if signature_name:
            payload["signature_name"] = signature_name
        return self._call("POST", model_path(self._name(model_name), version, label) + ":predict", payload)

    def _examples_call(
        self,
        verb: str,
        examples: Sequence[Mapping],
        context: Mapping | None,
        model_name: str | None,
        version: int | None,
        label: str | None,
        signature_name: str | None,
    ) -> dict:
        payload: dict[str, Any] = {"examples": list(examples)}
        if context is not None:
            payload["context"] = context
        if signature_name:
            payload["signature_name"] = signature_name
        return self._call("POST", model_path(self._name(model_name), version, label) + f":{verb}", payload)

    def classify(
        self,
        examples: Sequence[Mapping],
        *,
        context: Mapping | None = None,
        model_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        signature_name: str | None = "tensorflow/serving/classify",
    ) -> dict:
        """POST :classify: `{"results": [[[label, score], ...], ...]}`."""
        return self._examples_call("classify", examples, context, model_name, version, label, signature_name)

    def regress(
        self,
        examples: Sequence[Mapping],
        *,
        context: Mapping | None = None,
        model_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        signature_name: str | None = "tensorflow/serving/regress",
    ) -> dict:
        """POST :regress: `{"results": [value, ...]}`."""
        return self._examples_call("regress", examples, context, model_name, version, label, signature_name)


def tls_credentials(
    ca_cert: str | os.PathLike,
    client_cert: str | os.PathLike | None = None,
    client_key: str | os.PathLike | None = None,
) -> grpc.ChannelCredentials:
    """gRPC TLS credentials from PEM files: the CA that signed the server, and a client pair for mutual TLS."""
    if (client_cert is None) != (client_key is None):
        raise CourseError("mutual TLS needs both client_cert and client_key (or neither)")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_cert).read_bytes(),
        private_key=Path(client_key).read_bytes() if client_key else None,
        certificate_chain=Path(client_cert).read_bytes() if client_cert else None,
    )


class GrpcClient:
    """TF Serving's gRPC API: `predict` (numpy in, numpy out), `metadata`, `status`, `classify`, `regress`."""

    def __init__(
        self,
        target: str = "127.0.0.1:8500",
        model_name: str | None = None,
        timeout: float = 30.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        credentials: grpc.ChannelCredentials | None = None,
    ):
        """`credentials` (from `tls_credentials`) for a server started with --ssl_config_file; else plaintext."""
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.target = target
        self.model_name = model_name
        self.timeout = timeout
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self.channel = (
            grpc.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(target, options=options)
        )
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._input_names: dict[tuple, list[str]] = {}

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spec(
        self, spec, model_name: str | None, version: int | None, label: str | None, signature_name: str | None = None
    ) -> None:
        name = model_name or self.model_name
        if not name:
            raise CourseError("No model name: pass model_name=... here or to GrpcClient(...)")
        if version is not None and label is not None:
            raise CourseError("Give a version or a label, not both")
        spec.name = name
        if version is not None:
            spec.version.value = int(version)
        if label is not None:
            spec.version_label = label
        if signature_name:
            spec.signature_name = signature_name

    def _invoke(self, method, request, timeout: float | None):
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
            if code == grpc.StatusCode.UNAVAILABLE:
                details = f"Cannot reach the model server at {self.target}: is it running, on this port? ({details})"
            raise ServingError(code, details) from None

    def _single_input_name(self, model_name, version, label, signature_name) -> str:
        key = (model_name or self.model_name, version, label, signature_name or "serving_default")
        if key not in self._input_names:
            metadata = self.metadata(model_name, version=version, label=label)
            from tensorflow_serving.apis import get_model_metadata_pb2

            defs = get_model_metadata_pb2.SignatureDefMap()
            metadata.metadata["signature_def"].Unpack(defs)
            if key[3] not in defs.signature_def:
                raise CourseError(f"The model has no signature {key[3]!r}; it has {sorted(defs.signature_def)}")
            self._input_names[key] = list(defs.signature_def[key[3]].inputs)
        names = self._input_names[key]
        if len(names) != 1:
            raise CourseError(f"The signature has inputs {names}: pass a dict {{name: array}}")
        return names[0]

    def predict(
        self,
        inputs: Mapping[str, Any] | Any,
        *,
        model_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        signature_name: str | None = None,
        output_filter: Sequence[str] = (),
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Predict: `inputs` is {name: array}, or one array for a single-input signature."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model_name, version, label, signature_name)
        if not isinstance(inputs, Mapping):
            inputs = {self._single_input_name(model_name, version, label, signature_name): inputs}
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter)
        response = self._invoke(self.prediction.Predict, request, timeout)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(
        self,
        model_name: str | None = None,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
    ):
        """GetModelMetadata (signature_def): the GetModelMetadataResponse proto."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model_name, version, label)
        return self._invoke(self.prediction.GetModelMetadata, request, timeout)

    def status(
        self,
        model_name: str | None = None,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
    ):
        """GetModelStatus: the GetModelStatusResponse proto."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model_name, version, label)
        return self._invoke(self.models.GetModelStatus, request, timeout)

    def _fill_examples(self, request, examples: Sequence[Mapping], context: Mapping | None) -> None:
        from course_lib.serving.tensors import example_from_json

        if context is not None:
            request.input.example_list_with_context.context.CopyFrom(example_from_json(dict(context)))
            target = request.input.example_list_with_context.examples
        else:
            target = request.input.example_list.examples
        for example in examples:
            target.add().CopyFrom(example_from_json(dict(example)))

    def classify(
        self,
        examples: Sequence[Mapping],
        *,
        context: Mapping | None = None,
        model_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "tensorflow/serving/classify",
        timeout: float | None = None,
    ):
        """Classify JSON-like examples ({feature: value or list}); returns the ClassificationResponse."""
        from tensorflow_serving.apis import classification_pb2

        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, model_name, version, label, signature_name)
        self._fill_examples(request, examples, context)
        return self._invoke(self.prediction.Classify, request, timeout)

    def regress(
        self,
        examples: Sequence[Mapping],
        *,
        context: Mapping | None = None,
        model_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "tensorflow/serving/regress",
        timeout: float | None = None,
    ):
        """Regress JSON-like examples; returns the RegressionResponse."""
        from tensorflow_serving.apis import regression_pb2

        request = regression_pb2.RegressionRequest()
        self._spec(request.model_spec, model_name, version, label, signature_name)
        self._fill_examples(request, examples, context)
        return self._invoke(self.prediction.Regress, request, timeout)


def _is_status_url(url: str) -> bool:
    path = url.split("://", 1)[-1].partition("/")[2]
    return path.lower().startswith("v1/models/") and ":" not in path and not path.endswith("/metadata")


def probe_server(url: str) -> tuple[bool, dict | None, str]:
    """One look at a server: (ready, status JSON or None, what was seen, in words)."""
    wants_model = _is_status_url(url)
    try:
        response = requests.get(url, timeout=2.0)
    except requests.RequestException as exc:
        return False, None, f"{type(exc).__name__}: {_short(exc)}"
    if not wants_model:
        if response.status_code < 500:
            return True, None, f"HTTP {response.status_code}"
        return False, None, f"HTTP {response.status_code}: {response.text[:200]}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        states = [v.get("state") for v in body.get("model_version_status", [])]
        if "AVAILABLE" in states:
            return True, body, "a version is AVAILABLE"
        return False, body, f"HTTP 200 with version states {states}"
    error = body.get("error") if isinstance(body, dict) else response.text[:200]
    return False, None, f"HTTP {response.status_code}: {error}"


def wait_for_server(
    url: str, timeout: float = 30.0, *, model_name: str | None = None, first_delay: float = 0.05, max_delay: float = 2.0
) -> dict | None:
    """Poll until the server answers, retrying with exponential backoff; CourseError after `timeout`.

    `url` is the REST base (`http://127.0.0.1:8501`) or a model status URL. With a model (in the URL
    or `model_name`), ready means a version is AVAILABLE, and the status JSON is returned; with a
    bare base URL, ready means the server answers HTTP at all. The error says what was seen last.
    """
    target = url.rstrip("/")
    if model_name:
        target = target.split("/v1/", 1)[0] + model_path(model_name)
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        ready, body, last_seen = probe_server(target)
        if ready:
            return body
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = "did not report a loaded model" if _is_status_url(target) else "did not answer"
            raise CourseError(
                f"Model server at {target} {what} within {timeout:g} s. Last seen: "
                f"{last_seen}. Check that the server is running and read its log."
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)


def _short(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused (nothing listens on that port yet)"
    return text[:200]

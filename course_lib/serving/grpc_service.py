"""The gRPC API of TF Serving: PredictionService and ModelService, from tensorflow-serving-api's protos.

Predict converts TensorProtos to numpy and back; everything else (resolving versions, checking
inputs, running, metadata and status) is the InferenceService the REST API uses too.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from course_lib.serving.config import validate_model_config
from course_lib.serving.errors import ServingError, invalid_argument
from course_lib.serving.proto_codec import array_to_tensor_proto, fill_tensor_proto, tensor_proto_to_array
from course_lib.serving.servable import ServableVersion, Signature
from course_lib.serving.service import InferenceService

__all__ = ["add_services", "array_to_tensor_proto", "tensor_proto_to_array"]

log = logging.getLogger("course_lib.serving")


def _recorder(service: InferenceService, request, api: str):
    """A callback that counts and times this request (None when metrics and access log are off)."""
    observer = service.observer
    if observer is None:
        return None
    started = time.perf_counter()
    model = request.model_spec.name if request.HasField("model_spec") else ""
    if not model and api == "MultiInference" and request.tasks:
        model = request.tasks[0].model_spec.name

    def record(status: str) -> None:
        observer.request(model, api, "GRPC", status, time.perf_counter() - started)

    return record


class PredictCodec:
    """Predict's request and response handling around the run."""

    def __init__(self, service: InferenceService, tensor_content: bool = False):
        self.service = service
        self.tensor_content = tensor_content

    def decode(self, request: predict_pb2.PredictRequest):
        """(model, signature, numpy inputs, output names) of a PredictRequest, checked."""
        model = self.service.resolve(request.model_spec)  # no model name: INVALID_ARGUMENT, as in TF Serving
        signature = self.service.predict_signature(model, request.model_spec.signature_name, rest=False)
        output_names = self.service.output_names(signature, list(request.output_filter))
        inputs = {name: tensor_proto_to_array(name, proto) for name, proto in request.inputs.items()}
        return model, signature, inputs, output_names

    def encode(self, model: ServableVersion, signature: Signature, outputs) -> predict_pb2.PredictResponse:
        response = predict_pb2.PredictResponse()
        spec = response.model_spec
        spec.name = model.name
        spec.version.value = model.version
        spec.signature_name = signature.name
        for name, value in outputs.items():
            fill_tensor_proto(response.outputs[name], value, self.tensor_content)  # in place: no copy
        return response


async def _guard_async(context: grpc.aio.ServicerContext, method: str, work, record=None):
    """Run a handler's coroutine; ServingErrors become gRPC statuses, anything else INTERNAL (server stays up).

    `record(status_name)` (metrics, access log) is called once the answer is known, before an abort.
    """
    try:
        result = await work
    except ServingError as error:
        if record is not None:
            record(error.code.name)
        await context.abort(error.code, error.message)
    except Exception as exc:
        log.exception("Unexpected error in gRPC %s", method)
        if record is not None:
            record("INTERNAL")
        await context.abort(grpc.StatusCode.INTERNAL, f"Internal error: {type(exc).__name__}: {exc}")
    else:
        if record is not None:
            record("OK")
        return result


async def _now(function, *args):
    return function(*args)


class AsyncPredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService on a grpc.aio server, on the event loop REST runs on.

    Predict decodes on the loop (microseconds: the codec reads tensor_content without copying) and
    awaits the same `InferenceService.run` as REST: the model runs on the inference threads or in
    the batcher, and no gRPC thread pool competes with them for the GIL.
    """

    def __init__(self, service: InferenceService, tensor_content: bool = False):
        self.service = service
        self.codec = PredictCodec(service, tensor_content)

    async def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        model, signature, inputs, output_names = self.codec.decode(request)
        outputs = await self.service.run(model, signature, inputs, output_names)
        return self.codec.encode(model, signature, outputs)

    async def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        record = _recorder(self.service, request, "Predict")
        return await _guard_async(context, "Predict", self._predict(request), record)

    async def Classify(self, request, context):  # noqa: N802
        record = _recorder(self.service, request, "Classify")
        return await _guard_async(context, "Classify", self.service.classify(request), record)

    async def Regress(self, request, context):  # noqa: N802
        record = _recorder(self.service, request, "Regress")
        return await _guard_async(context, "Regress", self.service.regress(request), record)

    async def GetModelMetadata(self, request, context):  # noqa: N802
        return await _guard_async(context, "GetModelMetadata", _now(self.service.metadata, request))

    async def MultiInference(self, request, context):  # noqa: N802
        record = _recorder(self.service, request, "MultiInference")
        return await _guard_async(context, "MultiInference", self.service.multi_inference(request), record)


def _reload_config(service: InferenceService, request: model_management_pb2.ReloadConfigRequest):
    try:
        validate_model_config(request.config, "ReloadConfigRequest")
    except ValueError as exc:
        raise invalid_argument(str(exc)) from None
    service.registry.update_config(request.config)
    service.registry.poll_once()
    return model_management_pb2.ReloadConfigResponse()


class AsyncModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """ModelService on the grpc.aio server; a reload (it loads models) runs off the event loop."""

    def __init__(self, service: InferenceService):
        self.service = service

    async def GetModelStatus(self, request, context):  # noqa: N802
        return await _guard_async(context, "GetModelStatus", _now(self.service.status, request))

    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        reload = asyncio.to_thread(_reload_config, self.service, request)
        return await _guard_async(context, "HandleReloadConfigRequest", reload)


def add_services(server: grpc.aio.Server, service: InferenceService, tensor_content: bool = False) -> None:
    """PredictionService and ModelService on a grpc.aio server, as coroutines on its event loop."""
    server.add_generic_rpc_handlers(
        (
            _parsing_handler(
                AsyncPredictionServicer(service, tensor_content),
                "tensorflow.serving.PredictionService",
                PREDICTION_REQUESTS,
            ),
            _parsing_handler(AsyncModelServicer(service), "tensorflow.serving.ModelService", MODEL_REQUESTS),
        )
    )


PREDICTION_REQUESTS = {
    "Classify": classification_pb2.ClassificationRequest,
    "Regress": regression_pb2.RegressionRequest,
    "Predict": predict_pb2.PredictRequest,
    "MultiInference": inference_pb2.MultiInferenceRequest,
    "GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest,
}
MODEL_REQUESTS = {
    "GetModelStatus": get_model_status_pb2.GetModelStatusRequest,
    "HandleReloadConfigRequest": model_management_pb2.ReloadConfigRequest,
}


def _parsing_handler(servicer, service_name: str, requests: dict) -> grpc.GenericRpcHandler:
    """The service's methods, each parsing its own request: bytes that are no protobuf are the client's
    error (INVALID_ARGUMENT), where grpcio's own parsing answers INTERNAL before any handler runs."""
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method), request_type),
            request_deserializer=None,
            response_serializer=_serialize,
        )
        for method, request_type in requests.items()
    }
    return grpc.method_handlers_generic_handler(service_name, handlers)


def _serialize(message) -> bytes:
    return message.SerializeToString()


def _parsing(behavior, request_type):
    what = f"The request is not a valid {request_type.DESCRIPTOR.full_name}"

    async def handle(raw: bytes, context):
        try:
            request = request_type.FromString(raw)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{what}: {exc}")
            raise  # abort raises; this only tells the type checker
        return await behavior(request, context)

    return handle


# grpcio's HTTP/2 bandwidth-delay probing pings every connection as data flows; on loopback and a
# LAN it buys nothing and costs CPU on every request (about 0.1 ms each on the course's 2-core VM).
SERVER_CHANNEL_OPTIONS = (("grpc.http2.bdp_probe", 0), ("grpc.so_reuseport", 0))


async def start_aio_server(
    addresses: list[str],
    service: InferenceService,
    *,
    max_request_bytes: int,
    max_concurrent_rpcs: int,
    credentials: grpc.ServerCredentials | None = None,
    tensor_content: bool = False,
    health_service: bool = False,
) -> grpc.aio.Server:
    """gRPC on the running event loop (the one REST serves on), bound to `addresses` and started.

    One loop for both front ends: a gRPC request costs no thread of its own, and the model runs on
    the same inference threads (or batcher) as a REST request. Raises OSError naming an address
    that cannot be bound.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", max(max_request_bytes, 64 * 1024 * 1024)),
            *SERVER_CHANNEL_OPTIONS,
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    add_services(server, service, tensor_content=tensor_content)
    if health_service:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        servicer = health.aio.HealthServicer()
        for name in ("", "ModelService", "PredictionService"):
            await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for address in addresses:
        try:
            bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise OSError(address)
    await server.start()
    return server

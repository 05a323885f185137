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
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from course_lib.serving.config import validate_model_config
from course_lib.serving.errors import ServingError, invalid_argument
from course_lib.serving.service import InferenceService

log = logging.getLogger("course_lib.serving")


def tensor_proto_to_array(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    """A request TensorProto as numpy (strings become an object array of bytes)."""
    try:
        shape = [d.size for d in proto.tensor_shape.dim]
        if proto.tensor_content and proto.dtype not in (types_pb2.DT_STRING, types_pb2.DT_INVALID):
            dtype = np.dtype(tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype)
            return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
        return tf.make_ndarray(proto)
    except Exception as exc:  # malformed protos raise TypeError/ValueError from deep inside TF
        raise invalid_argument(f"Input '{name}' is not a valid TensorProto: {exc}") from None


# Where TF Serving's Tensor::AsProtoField writes each dtype's values (the typed fields clients read).
_TYPED_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
}


def array_to_tensor_proto(value: np.ndarray, tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """numpy as a TensorProto, laid out as TF Serving lays out its responses.

    By default the values go in the typed field of their dtype (`float_val`, `int64_val`, ...), which
    is what TF Serving sends and what most clients read (`outputs["y"].float_val`); with
    `--enable_serialization_as_tensor_content` numbers go in `tensor_content`, raw bytes, as there.
    tf.make_ndarray reads both.
    """
    dtype = tf.dtypes.as_dtype(value.dtype).as_datatype_enum if value.dtype.kind in "biuf" else None
    if dtype is None or dtype not in _TYPED_FIELDS:
        return tf.make_tensor_proto(value)  # strings, complex numbers: TensorFlow's own layout
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in value.shape:
        proto.tensor_shape.dim.add(size=size)
    if tensor_content:
        proto.tensor_content = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
    elif dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        proto.half_val.extend(np.ascontiguousarray(value).view(np.uint16).ravel().tolist())
    else:
        getattr(proto, _TYPED_FIELDS[dtype]).extend(value.ravel().tolist())
    return proto


def _guard(context: grpc.ServicerContext, method: str, work, record=None):
    """Run a handler; ServingErrors become gRPC statuses, anything else INTERNAL (server stays up).

    `record(status_name)` (metrics, access log) is called once the answer is known, before an abort.
    """
    try:
        result = work()
    except ServingError as error:
        if record is not None:
            record(error.code.name)
        context.abort(error.code, error.message)
    except Exception as exc:
        # typeshed's grpc stubs lack ServicerContext.code(), which grpcio's ServicerContext has
        if context.code() is not None:  # pyright: ignore[reportAttributeAccessIssue]  (already aborted)
            raise
        log.exception("Unexpected error in gRPC %s", method)
        if record is not None:
            record("INTERNAL")
        context.abort(grpc.StatusCode.INTERNAL, f"Internal error: {type(exc).__name__}: {exc}")
    else:
        if record is not None:
            record("OK")
        return result


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict, Classify, Regress, GetModelMetadata.

    Handlers run on gRPC's worker threads: Predict converts and infers right there (or waits for
    the batcher), so a request costs no hop through the event loop. Classify and Regress run the
    shared async code on the loop.
    """

    def __init__(self, service: InferenceService, loop: asyncio.AbstractEventLoop, tensor_content: bool = False):
        self.service = service
        self.loop = loop
        self.tensor_content = tensor_content

    def _recorder(self, request, api: str):
        """A callback that counts and times this request (None when metrics and access log are off)."""
        observer = self.service.observer
        if observer is None:
            return None
        started = time.perf_counter()
        model = request.model_spec.name if request.HasField("model_spec") else ""
        if not model and api == "MultiInference" and request.tasks:
            model = request.tasks[0].model_spec.name

        def record(status: str) -> None:
            observer.request(model, api, "GRPC", status, time.perf_counter() - started)

        return record

    def _on_loop(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        model = self.service.resolve(request.model_spec)  # no model name: INVALID_ARGUMENT, as in TF Serving
        signature = self.service.predict_signature(model, request.model_spec.signature_name, rest=False)
        output_names = self.service.output_names(signature, list(request.output_filter))
        inputs = {name: tensor_proto_to_array(name, proto) for name, proto in request.inputs.items()}
        outputs = self.service.run_blocking(model, signature, inputs, output_names)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature.name
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(array_to_tensor_proto(value, self.tensor_content))
        return response

    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        return _guard(context, "Predict", lambda: self._predict(request), self._recorder(request, "Predict"))

    def Classify(self, request, context):  # noqa: N802
        record = self._recorder(request, "Classify")
        return _guard(context, "Classify", lambda: self._on_loop(self.service.classify(request)), record)

    def Regress(self, request, context):  # noqa: N802
        record = self._recorder(request, "Regress")
        return _guard(context, "Regress", lambda: self._on_loop(self.service.regress(request)), record)

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):  # noqa: N802
        return _guard(context, "GetModelMetadata", lambda: self.service.metadata(request))

    def MultiInference(self, request, context):  # noqa: N802
        record = self._recorder(request, "MultiInference")
        return _guard(context, "MultiInference", lambda: self._on_loop(self.service.multi_inference(request)), record)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, service: InferenceService):
        self.service = service

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):  # noqa: N802
        return _guard(context, "GetModelStatus", lambda: self.service.status(request))

    def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest, context):  # noqa: N802
        def work():
            try:
                validate_model_config(request.config, "ReloadConfigRequest")
            except ValueError as exc:
                raise invalid_argument(str(exc)) from None
            self.service.registry.update_config(request.config)
            self.service.registry.poll_once()
            return model_management_pb2.ReloadConfigResponse()

        return _guard(context, "HandleReloadConfigRequest", work)


def add_services(
    server: grpc.Server, service: InferenceService, loop: asyncio.AbstractEventLoop, tensor_content: bool = False
) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(service, loop, tensor_content), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service), server)

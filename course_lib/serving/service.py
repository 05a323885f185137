"""What the REST and gRPC front ends share: resolving versions, running signatures, building answers.

Both front ends call these methods and get the same protobuf messages (or, for Predict, the same
numpy outputs), so the two APIs cannot drift apart. Inference runs on worker threads, off the
event loop, optionally through the Batcher.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    regression_pb2,
)

from course_lib.serving.batching import Batcher
from course_lib.serving.config import BatchingOptions
from course_lib.serving.errors import failed_precondition, invalid_argument, unimplemented
from course_lib.serving.observe import RequestObserver
from course_lib.serving.registry import ModelRegistry
from course_lib.serving.servable import (
    DEFAULT_SIGNATURE,
    ServableVersion,
    Signature,
    batch_size_of,
    check_inputs,
    dtype_name,
)

SIGNATURE_DEF_FIELD = "signature_def"
CLASSIFY_INPUTS, CLASSIFY_CLASSES, CLASSIFY_SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"
CLASSIFY_METHOD, REGRESS_METHOD = "tensorflow/serving/classify", "tensorflow/serving/regress"


def spec_version(spec: model_pb2.ModelSpec) -> tuple[int | None, str | None]:
    """(version, label) a ModelSpec asks for; both None means the latest version."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


class InferenceService:
    """Predict, Classify, Regress, GetModelMetadata and GetModelStatus over a ModelRegistry."""

    def __init__(
        self,
        registry: ModelRegistry,
        batching: BatchingOptions | None = None,
        num_threads: int = 4,
        observer: RequestObserver | None = None,
    ):
        self.registry = registry
        self.observer = observer
        self._executor = ThreadPoolExecutor(num_threads, thread_name_prefix="inference")
        self.batcher = Batcher(batching) if batching is not None else None

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ----- lookups ---------------------------------------------------------------------------------

    def resolve(self, spec: model_pb2.ModelSpec) -> ServableVersion:
        if not spec.name:  # TF Serving's ServerCore: a request without a model name is the client's error
            raise invalid_argument("ModelSpec has no name specified.")
        version, label = spec_version(spec)
        return self.registry.resolve(spec.name, version=version, label=label)

    @staticmethod
    def predict_signature(model: ServableVersion, signature_name: str, *, rest: bool) -> Signature:
        """The signature a Predict request names (REST and gRPC word the miss differently, as in TF Serving)."""
        name = signature_name or DEFAULT_SIGNATURE
        signature = model.signatures.get(name)
        if signature is None:
            if rest:
                raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
            raise failed_precondition(f'Serving signature key "{name}" not found.')
        return signature

    @staticmethod
    def output_names(signature: Signature, output_filter: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
        """The outputs to return: the filter's, checked, or all of them."""
        if not output_filter:
            return tuple(signature.outputs)
        seen: set[str] = set()
        for alias in output_filter:
            if alias not in signature.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in seen:
                raise invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        return tuple(output_filter)

    # ----- inference -----------------------------------------------------------------------------

    def _batched(self, model: ServableVersion, signature: Signature, inputs: dict[str, np.ndarray]) -> Future | None:
        """Check the inputs; hand them to the batcher if it applies (its future), else None."""
        if not signature.inputs:
            raise invalid_argument(f"Failed to get input map for signature: {signature.name}")
        check_inputs(signature, inputs)
        size = batch_size_of(inputs)
        if self.batcher is None or not signature.batchable or not size:
            return None
        key = (
            model,
            signature.name,
            tuple((name, value.shape[1:], value.dtype.str) for name, value in sorted(inputs.items())),
        )
        all_outputs = tuple(signature.outputs)

        def run_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return self._timed_run(model, signature, batch, all_outputs)

        return self.batcher.submit(key, run_batch, inputs, size)

    def _timed_run(
        self, model: ServableVersion, signature: Signature, inputs: dict[str, np.ndarray], output_names: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """The model itself, timed for :tensorflow:serving:runtime_latency when metrics are on."""
        if self.observer is None:
            return model.run(signature, inputs, output_names)
        started = time.perf_counter()
        outputs = model.run(signature, inputs, output_names)
        api = {CLASSIFY_METHOD: "Classify", REGRESS_METHOD: "Regress"}.get(signature.method_name, "Predict")
        self.observer.runtime(model.name, api, time.perf_counter() - started)
        return outputs

    async def run(
        self, model: ServableVersion, signature: Signature, inputs: dict[str, np.ndarray], output_names: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """Run a signature off the event loop, through the batcher when it can be batched."""
        batched = self._batched(model, signature, inputs)
        if batched is None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._timed_run, model, signature, inputs, output_names)
        outputs = await asyncio.wrap_future(batched)
        return {name: outputs[name] for name in output_names}

    async def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        model = self.resolve(request.model_spec)
        response = classification_pb2.ClassificationResponse()
        signature = await self._classify_into(response.result, model, request.model_spec.signature_name, request.input)
        _fill_model_spec(response.model_spec, model, signature.name)
        return response

    async def _classify_into(self, result, model: ServableVersion, signature_name: str, input_proto) -> Signature:
        signature = _classify_regress_signature(model, signature_name, classify=True)
        serialized = serialized_examples(input_proto)
        wanted = tuple(name for name in (CLASSIFY_CLASSES, CLASSIFY_SCORES) if name in signature.outputs)
        outputs = await self.run(model, signature, {CLASSIFY_INPUTS: serialized}, wanted)
        _fill_classifications(result, outputs, len(serialized))
        return signature

    async def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        model = self.resolve(request.model_spec)
        response = regression_pb2.RegressionResponse()
        signature = await self._regress_into(response.result, model, request.model_spec.signature_name, request.input)
        _fill_model_spec(response.model_spec, model, signature.name)
        return response

    async def _regress_into(self, result, model: ServableVersion, signature_name: str, input_proto) -> Signature:
        signature = _classify_regress_signature(model, signature_name, classify=False)
        serialized = serialized_examples(input_proto)
        outputs = await self.run(model, signature, {REGRESS_INPUTS: serialized}, (REGRESS_OUTPUTS,))
        values = outputs[REGRESS_OUTPUTS]
        if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
            raise invalid_argument(
                "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                f"{list(values.shape)}"
            )
        if values.shape[0] != len(serialized):
            raise invalid_argument(
                f"Input batch size did not match output batch size: {len(serialized)} vs. {values.shape[0]}"
            )
        for value in values.reshape(-1).tolist():
            result.regressions.add().value = value
        return signature

    async def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        """Classify and Regress tasks of one model on the same examples, checked as TF Serving checks them."""
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        model = self.resolve(first)  # every task runs on the version the first task's spec resolves to
        seen: set[str] = set()
        for task in request.tasks:
            if not task.model_spec.name:
                raise invalid_argument("Found ModelSpec with an empty model name.")
            if task.model_spec.name != model.name:
                raise invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if name in seen:
                raise invalid_argument(f"Duplicate evaluation of signature: {name}")
            seen.add(name)
            if name not in model.signatures:
                raise invalid_argument(f"Requested signature not found in model graph: {name}")
            if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise unimplemented(f"Unsupported signature method_name: {task.method_name}")
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            result = response.results.add()
            name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if task.method_name == CLASSIFY_METHOD:
                await self._classify_into(result.classification_result, model, name, request.input)
            else:
                await self._regress_into(result.regression_result, model, name, request.input)
            _fill_model_spec(result.model_spec, model, name)
        return response

    # ----- metadata and status -------------------------------------------------------------------

    def metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field_name in request.metadata_field:
            if field_name != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field_name} is not supported")
        model = self.resolve(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(model.signature_def_map())
        return response

    def status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        version, label = spec_version(request.model_spec)
        statuses = self.registry.version_statuses(request.model_spec.name, version=version, label=label)
        response = get_model_status_pb2.GetModelStatusResponse()
        states = get_model_status_pb2.ModelVersionStatus.State
        for status in statuses:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = states.Value(status.state)
            entry.status.SetInParent()
            entry.status.error_code = _error_code_value(status.error_code)
            entry.status.error_message = status.error_message
        return response


# ----- helpers ---------------------------------------------------------------------------------------


def _error_code_value(name: str) -> int:
    return getattr(grpc.StatusCode, name).value[0]


def _fill_model_spec(spec: model_pb2.ModelSpec, model: ServableVersion, signature_name: str) -> None:
    spec.name = model.name
    spec.version.value = model.version
    spec.signature_name = signature_name


def _classify_regress_signature(model: ServableVersion, signature_name: str, *, classify: bool) -> Signature:
    """The signature for Classify/Regress, checked as TF Serving's PreProcess* functions check it."""
    name = signature_name or DEFAULT_SIGNATURE
    signature = model.signatures.get(name)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {name}")
    kind = "classification" if classify else "regression"
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    input_spec = signature.inputs.get(CLASSIFY_INPUTS)
    if input_spec is None:
        raise invalid_argument(
            f"No {kind} inputs found in SignatureDef '{name}' (it needs one input named "
            f"'inputs' of serialized tf.Example strings)"
        )
    if input_spec.dtype != types_pb2.DT_STRING:
        raise invalid_argument(f"Expected {kind} input 'inputs' of DT_STRING, got {input_spec.dtype_enum_name}")
    if classify:
        if len(signature.outputs) not in (1, 2):
            raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
        if CLASSIFY_CLASSES not in signature.outputs and CLASSIFY_SCORES not in signature.outputs:
            raise invalid_argument(
                'Expected classification signature outputs to contain at least one of "classes" or "scores". '
                f"Signature '{name}' has outputs {sorted(signature.outputs)}"
            )
    else:
        if len(signature.outputs) != 1:
            raise invalid_argument("Expected one output Tensor.")
        if REGRESS_OUTPUTS not in signature.outputs:
            raise invalid_argument(
                f"No regression outputs found in SignatureDef '{name}' (it needs an output named 'outputs')"
            )
    return signature


def serialized_examples(input_proto) -> np.ndarray:
    """The request's tf.Examples, serialized (context features merged into each), as a string tensor."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        context = input_proto.example_list_with_context.context
        examples = []
        for example in input_proto.example_list_with_context.examples:
            merged = example_pb2.Example()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            examples.append(merged.SerializeToString())
    else:
        examples = []
    if not examples:
        raise invalid_argument("Input is empty")
    array = np.empty(len(examples), dtype=object)
    array[:] = examples
    return array


def _fill_classifications(
    result: classification_pb2.ClassificationResult, outputs: dict[str, np.ndarray], num_examples: int
) -> None:
    classes, scores = outputs.get(CLASSIFY_CLASSES), outputs.get(CLASSIFY_SCORES)
    for label, tensor in (("classes", classes), ("scores", scores)):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {list(tensor.shape)}")
        if tensor.shape[0] != num_examples:
            raise invalid_argument(f"Expected {label} output batch size of {num_examples}. Got: {tensor.shape[0]}")
    if scores is not None and scores.dtype != np.float32:
        raise invalid_argument(f"Expected scores Tensor of DT_FLOAT. Got: {dtype_name(scores.dtype)}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    present = classes if classes is not None else scores
    if present is None:  # _classify_regress_signature already requires one of the two
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" or "scores".'
        )
    num_classes = present.shape[1]
    for row in range(num_examples):
        classifications = result.classifications.add()
        for column in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                label = classes[row, column]
                entry.label = label.decode("utf-8", errors="replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                entry.score = float(scores[row, column])


def rest_model_spec(name: str, version: int | None, label: str | None, signature_name: str = "") -> model_pb2.ModelSpec:
    """A ModelSpec from the parts of a REST URL (FillModelSpecWithNameVersionAndLabel)."""
    if version is not None and label is not None:
        raise invalid_argument(f"Both model version ({version}) and model version label ({label}) cannot be supplied.")
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    return spec

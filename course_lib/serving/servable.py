"""One loaded model version: its signatures, input checks, and inference through compiled graphs.

The signature metadata comes from `saved_model.pb` itself (what TF Serving reports); inference goes
through the SavedModel's concrete signature functions, never `model.predict`, which costs a fixed
setup per call on Keras 3 whatever the model (docs/benchmarks.md, "Inference benchmark").
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from course_lib.serving.errors import ServingError, invalid_argument

log = logging.getLogger("course_lib.serving")

DEFAULT_SIGNATURE = "serving_default"


def dtype_name(dtype) -> str:
    """TF's DataTypeString, e.g. `float`, `double`, `int32`, `string` (what TF Serving's errors say)."""
    try:
        enum = tf.dtypes.as_dtype(dtype).as_datatype_enum
    except TypeError:
        return "invalid"
    return types_pb2.DataType.Name(enum).removeprefix("DT_").lower()


@dataclass(frozen=True)
class TensorSpecInfo:
    """An input or output of a signature: its alias, dtype and shape (None where unknown)."""

    alias: str
    dtype: int  # tensorflow.DataType enum value
    shape: tuple[int | None, ...] | None  # None when the rank is unknown
    feed_name: str = ""  # the graph tensor behind the alias (TensorInfo.name), e.g. serving_default_x:0

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(tf.dtypes.as_dtype(self.dtype).as_numpy_dtype)

    @property
    def dtype_enum_name(self) -> str:
        return types_pb2.DataType.Name(self.dtype)

    def shape_text(self) -> str:
        if self.shape is None:
            return "[?]"
        return "[" + ",".join("-1" if d is None else str(d) for d in self.shape) + "]"

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape, strict=True)
        )


def _tensor_info_spec(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpecInfo:
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    return TensorSpecInfo(alias=alias, dtype=info.dtype, shape=shape, feed_name=info.name)


@dataclass
class Signature:
    """A SignatureDef and the concrete function that runs it (None for ops like the init op)."""

    name: str
    method_name: str
    inputs: dict[str, TensorSpecInfo]
    outputs: dict[str, TensorSpecInfo]
    function: Callable[..., Any] | None

    @property
    def batchable(self) -> bool:
        """Whether requests can be stacked along dimension 0 (every tensor has a free batch dim)."""
        tensors = list(self.inputs.values()) + list(self.outputs.values())
        return bool(self.inputs) and all(t.shape is not None and t.shape and t.shape[0] is None for t in tensors)


def read_meta_graph(path: Path, tags: tuple[str, ...]) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef of `path/saved_model.pb` whose tags match (ServingError if none does)."""
    pb_path = path / "saved_model.pb"
    if not pb_path.exists():
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}",
        )
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(pb_path.read_bytes())
    except Exception as exc:  # protobuf raises DecodeError, a bare Exception subclass
        raise ServingError(grpc.StatusCode.DATA_LOSS, f"Cannot parse {pb_path}: {exc}") from None
    for meta_graph in saved_model.meta_graphs:
        if set(tags) <= set(meta_graph.meta_info_def.tags):
            return meta_graph
    available = [list(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise ServingError(
        grpc.StatusCode.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. "
        f"{pb_path} has tag sets {available}",
    )


class ServableVersion:
    """A SavedModel version in memory, ready to answer Predict, Classify and Regress."""

    def __init__(self, name: str, version: int, path: Path, tags: tuple[str, ...] = ("serve",)):
        self.name = name
        self.version = version
        self.path = Path(path)
        self.meta_graph = read_meta_graph(self.path, tags)
        self._loaded = tf.saved_model.load(str(self.path), tags=list(tags))
        functions = dict(getattr(self._loaded, "signatures", {}) or {})
        self.signatures: dict[str, Signature] = {}
        for key, sig_def in self.meta_graph.signature_def.items():
            self.signatures[key] = Signature(
                name=key,
                method_name=sig_def.method_name,
                inputs={alias: _tensor_info_spec(alias, info) for alias, info in sig_def.inputs.items()},
                outputs={alias: _tensor_info_spec(alias, info) for alias, info in sig_def.outputs.items()},
                function=functions.get(key),
            )

    def signature_def_map(self):
        """The SignatureDefs as TF Serving reports them in GetModelMetadata."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        result = get_model_metadata_pb2.SignatureDefMap()
        for key, sig_def in self.meta_graph.signature_def.items():
            result.signature_def[key].CopyFrom(sig_def)
        return result

    def warm_up(self) -> None:
        """Run the default signature once on zeros, so the first real request is not the slow one."""
        signature = self.signatures.get(DEFAULT_SIGNATURE)
        if signature is None or signature.function is None:
            return
        inputs = {}
        for alias, spec in signature.inputs.items():
            if spec.shape is None or spec.dtype == types_pb2.DT_STRING:
                return
            shape = tuple(1 if d is None else d for d in spec.shape)
            inputs[alias] = np.zeros(shape, spec.numpy_dtype)
        try:
            self.run(signature, inputs, tuple(signature.outputs))
        except Exception as exc:  # a model may reject zeros; warming up is only an optimisation
            log.debug("Warm-up of %s version %s skipped: %s", self.name, self.version, exc)

    def run(
        self, signature: Signature, inputs: dict[str, np.ndarray], output_names: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """Run one signature on checked numpy inputs; returns the requested outputs as numpy."""
        if signature.function is None:
            raise invalid_argument(f"Signature {signature.name!r} cannot be run (it has no function)")
        tensors = {alias: tf.constant(value, dtype=signature.inputs[alias].dtype) for alias, value in inputs.items()}
        try:
            results = signature.function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise invalid_argument(message.strip().splitlines()[0] if message else repr(exc)) from None
        return {name: results[name].numpy() for name in output_names}


def check_inputs(signature: Signature, inputs: dict[str, np.ndarray]) -> None:
    """Reject inputs whose names, dtypes or shapes the signature cannot take, saying which and why.

    Names and dtypes fail with TF Serving 2.20's texts, in its order: the count first
    (predict_util.cc, VerifyRequestInputsSize), then each alias of the signature
    (tensorflow/cc/saved_model/util.cc, GetInputValues), then each dtype (the session's
    FunctionCallFrame::SetArgs, tested in predict_util_test.cc: "Expects arg[0] to be float but
    string is provided"; args in alias order). A second line says it in the course's words.
    Shapes TF Serving leaves to the graph; this server checks them first and says so.
    """
    sent, wanted = set(inputs), set(signature.inputs)
    if len(sent) != len(wanted):
        extra, missing = sorted(sent - wanted), sorted(wanted - sent)
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    if sent != wanted:
        missing_alias, unknown = sorted(wanted - sent)[0], sorted(sent - wanted)[0]
        raise invalid_argument(
            f"Signature input alias: {missing_alias}(feed name: {signature.inputs[missing_alias].feed_name}) "
            f"not found in request and no default value provided. Inputs expected to be in the request "
            f"{{{','.join(sorted(sent))}}}, or default input alias set: \n"
            f"input tensor alias not found in signature: {unknown}. Inputs expected to be in "
            f"the set {{{','.join(sorted(wanted))}}}."
        )
    for index, alias in enumerate(sorted(inputs)):
        value, spec = inputs[alias], signature.inputs[alias]
        if spec.dtype == types_pb2.DT_STRING:
            dtype_ok = value.dtype == object or value.dtype.kind in "SU"
        else:
            dtype_ok = value.dtype == spec.numpy_dtype
        if not dtype_ok:
            got = dtype_name(value.dtype) if value.dtype != object else "string"
            want = dtype_name(spec.dtype)
            raise invalid_argument(
                f"Expects arg[{index}] to be {want} but {got} is provided\n"
                f"Input '{alias}' has dtype {got} but signature '{signature.name}' expects {want}"
            )
    for alias, value in inputs.items():
        spec = signature.inputs[alias]
        if not spec.accepts_shape(value.shape):
            got_shape = "[" + ",".join(str(d) for d in value.shape) + "]"
            raise invalid_argument(
                f"Input '{alias}' has shape {got_shape} but signature '{signature.name}' expects "
                f"{spec.shape_text()} (-1 means any size)"
            )


def batch_size_of(inputs: dict[str, np.ndarray]) -> int | None:
    """The common size of dimension 0 of all inputs, or None when they differ or are scalars."""
    sizes = {value.shape[0] if value.ndim else None for value in inputs.values()}
    if len(sizes) != 1:
        return None
    return sizes.pop()


def describe_load_error(exc: BaseException) -> ServingError:
    """A ServingError for a version that failed to load, keeping TF's message short."""
    if isinstance(exc, ServingError):
        return exc
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    first_lines = " ".join(message.strip().splitlines()[:3])
    return ServingError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {first_lines}")

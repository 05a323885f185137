"""How much memory a Keras model needs, estimated from the model itself rather than a rule of thumb.

The lecture guesses activations as 2.5x the model size, whatever the batch size. Activations grow
with the batch and depend on layer shapes, not on parameter counts, so this module reads them off
the layer graph: parameter bytes per dtype, every layer's output at the batch size, the tensors
alive at once during inference, and the extra state training keeps (gradients, optimizer slots).
`lecture_rule` keeps the lecture's formula so notebook 10 can put the two side by side;
course_lib.memory.measure checks either against measurement.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course_lib.errors import CourseError
from course_lib.shapes import check_batch_size, check_input_shape
from course_lib.units import MIB

DEFAULT_HEADROOM = 1.2
DEFAULT_RUNTIME_OVERHEAD_BYTES = 512 * MIB

OPTIMIZER_SLOTS = {
    "sgd": 0,
    "sgd-momentum": 1,
    "rmsprop": 1,
    "adagrad": 1,
    "lion": 1,
    "adam": 2,
    "adamw": 2,
    "adamax": 2,
    "nadam": 2,
}
"""Extra copies of the trainable parameters an optimizer keeps (Keras 3): momentum buffers,
first and second moments. Adam keeps m and v, so training with it holds 4 copies of the weights
(weights, gradients, m, v)."""


@dataclass(frozen=True)
class LayerActivation:
    """The outputs of one layer call at a given batch size."""

    name: str
    layer_type: str
    output_shapes: tuple[tuple[int, ...], ...]
    output_bytes: int


@dataclass(frozen=True)
class MemoryEstimate:
    """A memory estimate for one model and batch size; every `*_bytes` field is in bytes.

    `activations_total_bytes` sums every layer output: what training keeps for the backward pass.
    `activations_peak_inference_bytes` is the most that is alive at once when layers run in order
    and each tensor is freed after its last consumer (the input batch included while it is needed).

    The recommendation multiplies the tensors by `headroom` and adds `runtime_overhead_bytes`:
    the headroom covers what layer outputs do not show (temporary buffers inside ops such as
    cuDNN convolution workspaces, the allocator rounding allocations up to its bins and
    fragmenting, a prefetched next batch); the fixed overhead is the CUDA context, cuBLAS/cuDNN
    handles and loaded kernels, which sit on the GPU outside TensorFlow's allocator. Both defaults
    are starting points: check them with `measured_peak_bytes` on the GPU you deploy to.
    """

    model_name: str
    batch_size: int
    param_count: int
    trainable_param_count: int
    param_bytes: int
    param_bytes_by_dtype: Mapping[str, int]
    input_bytes: int
    activations_total_bytes: int
    activations_peak_inference_bytes: int
    gradient_bytes: int
    optimizer: str
    optimizer_slot_bytes: int
    headroom: float = DEFAULT_HEADROOM
    runtime_overhead_bytes: int = DEFAULT_RUNTIME_OVERHEAD_BYTES
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def inference_bytes(self) -> int:
        """Weights plus the peak of live activations (which includes the input batch)."""
        return self.param_bytes + self.activations_peak_inference_bytes

    @property
    def eager_inference_bytes(self) -> int:
        """Inference when the model is called eagerly: weights, the input and every layer output.

        A Keras 3 Functional model run eagerly keeps each layer's output until the call returns,
        so it needs the training-sized activations even for inference (measured in notebook 10);
        compiled with `tf.function`, TensorFlow frees each tensor after its last use instead.
        """
        return self.param_bytes + self.input_bytes + self.activations_total_bytes

    @property
    def training_bytes(self) -> int:
        """Weights, gradients, optimizer slots, the input batch and every activation."""
        return (
            self.param_bytes
            + self.gradient_bytes
            + self.optimizer_slot_bytes
            + self.input_bytes
            + self.activations_total_bytes
        )

    @property
    def recommended_inference_bytes(self) -> int:
        """Device memory to provision for inference: tensors x headroom + runtime overhead."""
        return math.ceil(self.inference_bytes * self.headroom) + self.runtime_overhead_bytes

    @property
    def recommended_training_bytes(self) -> int:
        """Device memory to provision for training: tensors x headroom + runtime overhead."""
        return math.ceil(self.training_bytes * self.headroom) + self.runtime_overhead_bytes

    def to_rows(self) -> list[tuple[str, float]]:
        """(what, MiB) pairs, in the order a table or a bar chart would show them."""
        values = [
            ("parameters", self.param_bytes),
            ("input batch", self.input_bytes),
            ("activations, all layers (training)", self.activations_total_bytes),
            ("activations, peak live (inference)", self.activations_peak_inference_bytes),
            ("gradients", self.gradient_bytes),
            (f"optimizer slots ({self.optimizer})", self.optimizer_slot_bytes),
            ("inference total", self.inference_bytes),
            ("training total", self.training_bytes),
            ("recommended for inference", self.recommended_inference_bytes),
            ("recommended for training", self.recommended_training_bytes),
        ]
        return [(label, value / MIB) for label, value in values]

    def summary(self) -> str:
        """A readable multi-line summary in MiB."""
        dtypes = ", ".join(f"{d}: {b / MIB:.2f} MiB" for d, b in self.param_bytes_by_dtype.items())
        lines = [
            (
                f"{self.model_name} at batch size {self.batch_size}: {self.param_count:,} parameters "
                f"({self.trainable_param_count:,} trainable; {dtypes})"
            )
        ]
        lines += [f"  {label:<38} {mib:>13,.3f} MiB" for label, mib in self.to_rows()]
        lines.append(f"  headroom x{self.headroom} + {self.runtime_overhead_bytes / MIB:.0f} MiB runtime overhead")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def dtype_size(dtype: Any) -> int:
    """Bytes per element of a dtype given by name ('float16', 'int8', 'bfloat16') or object."""
    import tensorflow as tf

    try:
        return tf.as_dtype(getattr(dtype, "name", dtype)).size
    except TypeError:
        raise CourseError(f"unknown dtype {dtype!r}: use a name like 'float32', 'float16' or 'int8'") from None


def _unique_variables(variables: Sequence[Any]) -> list[Any]:
    seen: dict[int, Any] = {}
    for variable in variables:
        seen.setdefault(id(variable), variable)
    return list(seen.values())


def _count(variable: Any) -> int:
    return int(np.prod(tuple(variable.shape), dtype=np.int64))


def param_bytes_by_dtype(model: Any) -> dict[str, int]:
    """Bytes of all the model's weights (trainable and not, e.g. BatchNorm statistics) per dtype."""
    totals: Counter[str] = Counter()
    for variable in _unique_variables(model.weights):
        name = getattr(variable.dtype, "name", str(variable.dtype))
        totals[name] += _count(variable) * dtype_size(name)
    return dict(totals)


def param_bytes_for_dtype(model: Any, dtype: str) -> int:
    """Bytes of the model's weights if every parameter were stored as `dtype` (e.g. 'int8').

    Quantized formats add a few scales and zero points per tensor or channel; they are ignored.
    """
    return sum(_count(v) for v in _unique_variables(model.weights)) * dtype_size(dtype)


def _graph_of(model: Any) -> tuple[list[Any], list[Any]] | None:
    """The model's symbolic inputs and outputs, or None when it has no layer graph (subclassed)."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        return None
    if not inputs or not outputs or not all(hasattr(t, "_keras_history") for t in inputs + outputs):
        return None
    return inputs, outputs


def _node_of(tensor: Any) -> Any:
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def _execution_order(inputs: Sequence[Any], outputs: Sequence[Any]) -> list[Any]:
    """The graph's layer calls (nodes) in an order that runs each after its inputs exist."""
    input_ids = {id(t) for t in inputs}
    order, done = [], set()
    stack = [(_node_of(t), False) for t in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend(
            (_node_of(tensor), False) for tensor in reversed(node.input_tensors) if id(tensor) not in input_ids
        )
    return order


def _concrete_shape(tensor: Any, batch_size: int, where: str) -> tuple[int, ...]:
    shape = tuple(tensor.shape)
    if shape and shape[0] is None:
        shape = (batch_size, *shape[1:])
    if any(d is None for d in shape):
        raise CourseError(
            f"{where} has shape {tuple(tensor.shape)} with unknown dimensions besides the batch: "
            "build the model with a fixed input shape, e.g. "
            "keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))"
        )
    return shape


def _tensor_bytes(tensor: Any, batch_size: int, dtype: str | None, where: str) -> tuple[tuple[int, ...], int]:
    shape = _concrete_shape(tensor, batch_size, where)
    return shape, int(np.prod(shape, dtype=np.int64)) * dtype_size(dtype or tensor.dtype)


@dataclass
class _Profile:
    input_bytes: int
    output_bytes: int
    total_bytes: int
    peak_bytes: int
    layers: list[LayerActivation]
    notes: list[str]


def _profile(model: Any, batch_size: int, activation_dtype: str | None, prefix: str = "") -> _Profile:
    """Walk one Functional/Sequential graph: activation bytes, peak live bytes, per-layer rows."""
    graph = _graph_of(model)
    if graph is None:
        raise CourseError(
            f"{model.name!r} has no layer graph to read shapes from: estimate_memory needs a Functional "
            "or Sequential model built with an Input (or called once on data). For a subclassed model, "
            "rebuild it functionally or measure it with measured_peak_bytes."
        )
    inputs, outputs = graph
    output_ids = {id(t) for t in outputs}
    input_ids = {id(t) for t in inputs}
    sizes: dict[int, int] = {}
    for tensor in inputs:
        sizes[id(tensor)] = _tensor_bytes(tensor, batch_size, activation_dtype, f"input of {model.name!r}")[1]
    order = [n for n in _execution_order(inputs, outputs) if not n.is_input]

    uses: Counter[int] = Counter()
    for node in order:
        for tensor_id in {id(t) for t in node.input_tensors}:
            uses[tensor_id] += 1

    live = sum(sizes.values())
    peak = live
    total = 0
    layers: list[LayerActivation] = []
    notes: list[str] = []
    for node in order:
        operation = node.operation
        where = f"output of layer {prefix}{operation.name!r}"
        shaped = [_tensor_bytes(t, batch_size, activation_dtype, where) for t in node.output_tensors]
        out_bytes = sum(b for _, b in shaped)
        inner_extra, inner_total = 0, out_bytes
        if _graph_of(operation) is not None:  # a nested model: look inside
            try:
                inner = _profile(operation, batch_size, activation_dtype, f"{prefix}{operation.name}/")
            except CourseError as error:
                notes.append(f"nested model {prefix}{operation.name!r} counted by its outputs only ({error})")
            else:
                inner_extra = max(inner.peak_bytes - inner.input_bytes - inner.output_bytes, 0)
                inner_total = inner.total_bytes - inner.output_bytes + out_bytes
                layers.extend(inner.layers)
                notes.extend(inner.notes)
        layers.append(
            LayerActivation(
                f"{prefix}{operation.name}", type(operation).__name__, tuple(s for s, _ in shaped), out_bytes
            )
        )
        total += inner_total
        peak = max(peak, live + out_bytes + inner_extra)
        live += out_bytes
        for tensor, (_, size) in zip(node.output_tensors, shaped, strict=True):
            sizes[id(tensor)] = size
            if uses[id(tensor)] == 0 and id(tensor) not in output_ids:
                live -= size  # computed but never used
        for tensor_id in {id(t) for t in node.input_tensors}:
            uses[tensor_id] -= 1
            if uses[tensor_id] == 0 and tensor_id not in output_ids:
                live -= sizes[tensor_id]
    input_bytes = sum(sizes[i] for i in input_ids)
    output_bytes = sum(sizes[id(t)] for t in outputs if id(t) not in input_ids)
    return _Profile(input_bytes, output_bytes, total, peak, layers, notes)


def activation_bytes_by_layer(
    model: Any, batch_size: int, activation_dtype: str | None = None
) -> list[LayerActivation]:
    """Each layer call's output shapes and bytes at `batch_size`, nested models flattened, in run order."""
    check_batch_size(batch_size)
    return _profile(model, batch_size, activation_dtype).layers


def optimizer_slots(optimizer: Any) -> tuple[str, int]:
    """(name, copies of the trainable weights) for an optimizer name or Keras optimizer object."""
    if isinstance(optimizer, str):
        name = optimizer.lower().replace("_", "-")
        if name not in OPTIMIZER_SLOTS:
            raise CourseError(f"unknown optimizer {optimizer!r}: choose from {sorted(OPTIMIZER_SLOTS)}")
        return name, OPTIMIZER_SLOTS[name]
    name = type(optimizer).__name__.lower()
    if name == "sgd":
        return ("sgd-momentum", 1) if getattr(optimizer, "momentum", 0) else ("sgd", 0)
    if name in OPTIMIZER_SLOTS:
        return name, OPTIMIZER_SLOTS[name]
    raise CourseError(f"unknown optimizer {type(optimizer).__name__}: pass one of {sorted(OPTIMIZER_SLOTS)}")


def estimate_memory(
    model: Any,
    batch_size: int,
    input_shape: Sequence[int] | None = None,
    optimizer: Any = "adam",
    weights_dtype: str | None = None,
    activation_dtype: str | None = None,
    headroom: float = DEFAULT_HEADROOM,
    runtime_overhead_bytes: int = DEFAULT_RUNTIME_OVERHEAD_BYTES,
) -> MemoryEstimate:
    """Estimate inference and training memory of a Functional or Sequential model at `batch_size`.

    `input_shape` (per example, optional) is checked against the model. `weights_dtype` answers
    "what if the weights were float16 / int8" (gradients and optimizer slots follow it);
    `activation_dtype` overrides the dtype layers declare (under mixed_float16 they already
    declare float16). See MemoryEstimate for what each figure means and how the headroom is used.
    """
    check_batch_size(batch_size)
    if headroom < 1:
        raise CourseError(f"headroom is a factor >= 1 on top of the estimate, got {headroom}")
    if input_shape is not None:
        check_input_shape(model, input_shape)
    optimizer_name, slots = optimizer_slots(optimizer)
    profile = _profile(model, batch_size, activation_dtype)

    variables = _unique_variables(model.weights)
    trainable = _unique_variables(model.trainable_weights)
    if weights_dtype is None:
        by_dtype = param_bytes_by_dtype(model)
        trainable_bytes = sum(_count(v) * dtype_size(v.dtype) for v in trainable)
    else:
        by_dtype = {getattr(weights_dtype, "name", str(weights_dtype)): param_bytes_for_dtype(model, weights_dtype)}
        trainable_bytes = sum(_count(v) for v in trainable) * dtype_size(weights_dtype)
    return MemoryEstimate(
        model_name=model.name,
        batch_size=int(batch_size),
        param_count=sum(_count(v) for v in variables),
        trainable_param_count=sum(_count(v) for v in trainable),
        param_bytes=sum(by_dtype.values()),
        param_bytes_by_dtype=by_dtype,
        input_bytes=profile.input_bytes,
        activations_total_bytes=profile.total_bytes,
        activations_peak_inference_bytes=profile.peak_bytes,
        gradient_bytes=trainable_bytes,
        optimizer=optimizer_name,
        optimizer_slot_bytes=slots * trainable_bytes,
        headroom=headroom,
        runtime_overhead_bytes=runtime_overhead_bytes,
        notes=tuple(profile.notes),
    )


def lecture_rule(model: Any, batch_size: int, input_shape: Sequence[int]) -> dict[str, float]:
    """The lecture's estimate, exactly: float32 params, activations = 2.5 x model, + input, x1.5.

    Values in MB (1024**2 bytes) except `recommended_gpu_gb`. Its activation term ignores the
    batch size and the layer shapes: only the input term grows with the batch.
    """
    check_batch_size(batch_size)
    model_mb = model.count_params() * 4 / (1024**2)
    input_mb = float(np.prod(input_shape)) * batch_size * 4 / (1024**2)
    activation_mb = model_mb * 2.5
    total_mb = model_mb + input_mb + activation_mb
    return {
        "model_mb": model_mb,
        "input_mb": input_mb,
        "activation_mb": activation_mb,
        "total_mb": total_mb,
        "recommended_gpu_gb": total_mb / 1024 * 1.5,
    }

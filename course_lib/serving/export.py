"""Export a Keras model the way TF Serving wants it: `<base_path>/<version>/saved_model.pb` + `variables/`.

Keras 3 dropped `model.save(dir)` for SavedModels, and `model.export()` names its signature inputs
after internal tensors. `export_model` writes the signatures TF Serving clients expect:
`serving_default` (Predict, inputs and outputs named after the model's layers), and where the model
fits them, `tensorflow/serving/classify` and `tensorflow/serving/regress` (serialized tf.Example in,
`classes`/`scores` or `outputs` out). The version folder appears in one rename, so a polling server
never loads a half-written model.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from course_lib.errors import CourseError
from course_lib.serving.warmup import write_warmup_requests

PREDICT_SIGNATURE = "serving_default"
CLASSIFY_SIGNATURE = "tensorflow/serving/classify"
REGRESS_SIGNATURE = "tensorflow/serving/regress"
_METHOD_NAMES = {
    CLASSIFY_SIGNATURE: "tensorflow/serving/classify",
    REGRESS_SIGNATURE: "tensorflow/serving/regress",
}


def _clean_name(name: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name.split(":")[0]) if name else ""
    if not cleaned or not re.match(r"[A-Za-z]", cleaned):
        cleaned = fallback
    return cleaned


def _layer_name(tensor) -> str:
    """The name of the layer that made a Keras tensor (`features`, not `keras_tensor_7`)."""
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return getattr(operation, "name", None) or getattr(tensor, "name", "") or ""


def _model_inputs(model) -> list[tf.TensorSpec]:
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise CourseError(
            "The model has no known inputs: give it an Input layer (keras.Input(shape=...)) or call it once "
            "on a batch before exporting"
        )
    specs, seen = [], set()
    for index, tensor in enumerate(inputs):
        name = _clean_name(_layer_name(tensor), f"input_{index}")
        if name in seen:
            name = f"{name}_{index}"
        seen.add(name)
        shape = (None, *tuple(tensor.shape[1:]))
        specs.append(tf.TensorSpec(shape, tf.as_dtype(tensor.dtype), name=name))
    return specs


def _output_names(model, count: int) -> list[str]:
    names = list(getattr(model, "output_names", None) or [_layer_name(t) for t in getattr(model, "outputs", [])])
    if len(names) != count:
        names = [f"output_{i}" for i in range(count)]
    cleaned = [_clean_name(n, f"output_{i}") for i, n in enumerate(names)]
    return cleaned if len(set(cleaned)) == len(cleaned) else [f"output_{i}" for i in range(count)]


def _as_list(outputs) -> list:
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    if isinstance(outputs, list | tuple):
        return list(outputs)
    return [outputs]


def _feature_spec(specs: list[tf.TensorSpec]) -> dict | None:
    """tf.Example features for the inputs, or None when an input cannot be one (unknown dims)."""
    features = {}
    for spec in specs:
        shape = spec.shape[1:]
        if not shape.is_fully_defined():
            return None
        if spec.dtype.is_floating:
            features[spec.name] = tf.io.FixedLenFeature(shape, tf.float32)
        elif spec.dtype.is_integer:
            features[spec.name] = tf.io.FixedLenFeature(shape, tf.int64)
        elif spec.dtype == tf.string:
            features[spec.name] = tf.io.FixedLenFeature(shape, tf.string)
        else:
            return None
    return features


def export_model(
    model,
    base_path: str | os.PathLike,
    version: int,
    *,
    classify: bool | None = None,
    regress: bool | None = None,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    warmup_inputs: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> Path:
    """Export `model` as version `version` under `base_path`; returns the version folder.

    `classify`/`regress`: None adds the signature when the model fits it (one output; `(batch, K)`
    with K >= 2 for classify, `(batch,)` or `(batch, 1)` for regress; inputs with fixed shapes).
    `class_names` label the classify scores (default "0", "1", ...).
    `warmup_inputs`: batches ({input name: array}) written as TF Serving warm-up records
    (assets.extra/tf_serving_warmup_requests), replayed by the server before the version is served.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CourseError(f"version must be a whole number >= 0 (TF Serving's folder names), got {version!r}")
    base = Path(base_path)
    target = base / str(version)
    if target.exists() and not overwrite:
        raise CourseError(f"{target} already exists: export a new version number, or pass overwrite=True")
    specs = _model_inputs(model)
    zeros = [tf.zeros([1] + [d or 1 for d in s.shape[1:]], s.dtype) for s in specs]
    probe = _as_list(model(zeros if len(zeros) > 1 else zeros[0], training=False))
    output_names = _output_names(model, len(probe))

    def call_model(tensors: list):
        return _as_list(model(tensors if len(tensors) > 1 else tensors[0], training=False))

    @tf.function(input_signature=specs)
    def serve(*tensors):
        return dict(zip(output_names, call_model(list(tensors)), strict=True))

    signatures: dict[str, Callable[..., dict]] = {PREDICT_SIGNATURE: serve}
    features = _feature_spec(specs)
    single = probe[0] if len(probe) == 1 else None
    fits_classify = features is not None and single is not None and single.shape.rank == 2 and single.shape[-1] >= 2
    fits_regress = (
        features is not None
        and single is not None
        and (single.shape.rank == 1 or (single.shape.rank == 2 and single.shape[-1] == 1))
    )
    for wanted, fits, kind in ((classify, fits_classify, "classify"), (regress, fits_regress, "regress")):
        if wanted and not fits:
            raise CourseError(
                f"Cannot add a {kind} signature: it needs one output shaped "
                f"{'(batch, classes)' if kind == 'classify' else '(batch,) or (batch, 1)'} and inputs with fixed "
                f"shapes of float, int or string (got outputs {[tuple(p.shape) for p in probe]})"
            )

    # Both signatures need every input as a tf.Example feature and a single output (checked above).
    if features is not None and single is not None:

        def parse(serialized):
            parsed = tf.io.parse_example(serialized, features)
            return [tf.cast(parsed[name], spec.dtype) for name, spec in zip(features, specs, strict=True)]

        if classify or (classify is None and fits_classify):
            num_classes = int(single.shape[-1])
            labels = [str(i) for i in range(num_classes)] if class_names is None else [str(c) for c in class_names]
            if len(labels) != num_classes:
                raise CourseError(f"class_names has {len(labels)} names but the model has {num_classes} outputs")
            label_tensor = tf.constant(labels)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
            def classify_fn(serialized):
                scores = tf.cast(call_model(parse(serialized))[0], tf.float32)
                classes = tf.tile(label_tensor[tf.newaxis, :], tf.stack([tf.shape(scores)[0], 1]))
                return {"classes": classes, "scores": scores}

            signatures[CLASSIFY_SIGNATURE] = classify_fn
        if regress or (regress is None and fits_regress):

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
            def regress_fn(serialized):
                return {"outputs": tf.reshape(tf.cast(call_model(parse(serialized))[0], tf.float32), [-1])}

            signatures[REGRESS_SIGNATURE] = regress_fn

    module = tf.Module()
    module.model = model  # pyright: ignore[reportAttributeAccessIssue]  (tf.Module tracks any attribute set on it)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{version}-", dir=base))
    try:
        tf.saved_model.save(module, str(staging), signatures=signatures)
        _set_method_names(staging / "saved_model.pb")
        if warmup_inputs:
            write_warmup_requests(staging, warmup_inputs)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".retired-{version}-", dir=base))
            os.replace(target, retired / "old")
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _set_method_names(pb_path: Path) -> None:
    """Mark classify/regress signatures with their TF Serving method names (TF2 writes 'predict')."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(pb_path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for key, method in _METHOD_NAMES.items():
            if key in meta_graph.signature_def:
                meta_graph.signature_def[key].method_name = method
    pb_path.write_bytes(saved_model.SerializeToString())

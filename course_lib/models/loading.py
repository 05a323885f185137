"""Load pretrained models (Keras Applications, TF Hub, local files) through one course cache.

Infrastructure rule the course teaches: production never downloads at request time. Weights are
prefetched into the course cache (`python -m course_lib prefetch`, e.g. while building a lab image;
course_lib.models.cache) and loaded from there. When neither the cache nor the network has them,
`load_pretrained` builds the same architecture with random weights so shapes, parameter counts and
speed stay real, and says so loudly: never a silent fake.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_lib import formats
from course_lib.errors import CourseError, first_line
from course_lib.models.cache import (
    download_file,
    hub_cache_dir,
    hub_module_dir,
    hub_resolve,
    is_cached_module,
    keras_weights_dir,
    network_reachable,
    saved_weights_cache_path,
    weights_cache_path,
)
from course_lib.models.registry import APPLICATIONS, HUB_MODELS, ApplicationSpec, application_spec

SOURCES = ("cache", "download", "local", "fallback")


class PretrainedFallbackWarning(UserWarning):
    """Pretrained weights were unavailable: the model has random weights (predictions are meaningless)."""


@dataclass
class LoadedModel:
    """A model and where it came from: source is 'cache', 'download', 'local' or 'fallback'.

    `note` says in one sentence what you got; read it before trusting predictions.
    """

    model: Any
    source: str
    name: str
    note: str
    path: Path | None = None


def _build_application(spec_name: str, **kwargs: Any) -> Any:
    import keras

    return getattr(keras.applications, spec_name)(**kwargs)


def _announce_fallback(name: str, why: str, fix: str) -> None:
    message = (
        f"{name} pretrained weights unavailable ({why}): using {name} with RANDOM weights; shapes, "
        f"parameter counts and speed are real, predictions are NOT ImageNet-quality. Fix: {fix}"
    )
    print(f"WARNING: {message}", flush=True)
    warnings.warn(message, PretrainedFallbackWarning, stacklevel=3)


def load_pretrained(name: str, *, allow_download: bool = True, fallback: bool = True) -> LoadedModel:
    """A Keras Application with ImageNet weights from the course cache, else a download, else a fallback.

    `name` may also be a TF Hub name/URL (see `load_hub`) or a local model path (see `load_local`).
    With `fallback=False` an unavailable model raises CourseError instead of returning random weights.
    """
    if not isinstance(name, str) or not name.strip():
        raise CourseError(f"name must be a model name such as 'ResNet50', got {name!r}")
    if name in HUB_MODELS or "://" in name:
        return load_hub(name, allow_download=allow_download, fallback=fallback)
    if not any(known.lower() == name.strip().lower() for known in APPLICATIONS) and Path(name).exists():
        return load_local(name)
    spec = application_spec(name)
    for cached in (saved_weights_cache_path(spec.name), weights_cache_path(spec.name)):
        if cached.is_file():
            return LoadedModel(
                _with_weights(spec, cached),
                "cache",
                spec.name,
                f"{spec.name} with ImageNet weights from the course cache",
                cached,
            )
    why = "downloads disabled (allow_download=False)"
    if allow_download:
        if network_reachable(spec.url):
            try:
                path = download_file(spec.url, weights_cache_path(spec.name), spec.file_hash)
                return LoadedModel(
                    _with_weights(spec, path),
                    "download",
                    spec.name,
                    f"{spec.name} with ImageNet weights, downloaded into the course cache",
                    path,
                )
            except CourseError as error:
                why = str(error)
        else:
            why = f"offline: {urllib.parse.urlsplit(spec.url).hostname} is unreachable"
    fix = (
        f"run `python -m course_lib prefetch --only {spec.name}` online, or copy {spec.weights_file} to "
        f"{keras_weights_dir()}"
    )
    if not fallback:
        raise CourseError(f"{spec.name} ImageNet weights are not cached and {why}; {fix}")
    _announce_fallback(spec.name, why, fix)
    return LoadedModel(
        _build_application(spec.name, weights=None),
        "fallback",
        spec.name,
        f"{spec.name} with RANDOM weights (weights=None): {why}",
    )


def _with_weights(spec: ApplicationSpec, path: Path) -> Any:
    """Build the architecture without weights, then load the cached file (Keras picks the reader by suffix)."""
    model = _build_application(spec.name, weights=None)
    try:
        model.load_weights(str(path))
    except Exception as error:
        raise CourseError(
            f"cached weights {path} do not load into {spec.name} ({first_line(error)}): the file is "
            "corrupt or for another model; delete it and run `python -m course_lib prefetch`"
        ) from error
    return model


def load_hub(handle_or_name: str, *, allow_download: bool = True, fallback: bool = True) -> LoadedModel:
    """A TF Hub model as a callable object, from a local dir, the course's hub cache, or a download.

    A TF2 Hub model is a SavedModel: local and cached copies load with `tf.saved_model.load` (what
    `hub.load` does for them), so only downloads need tensorflow_hub's resolver. On Keras 3
    `hub.KerasLayer` cannot join a Keras model: call the loaded object directly, or use tf_keras
    (TF_USE_LEGACY_KERAS=1). Offline, known handles fall back to the same architecture with random
    weights and the same output shape; unknown handles raise CourseError.
    """
    spec = HUB_MODELS.get(handle_or_name)
    handle = spec.handle if spec else handle_or_name
    label = spec.name if spec else handle
    if Path(handle).exists():
        return LoadedModel(
            _load_savedmodel_dir(Path(handle)), "local", label, f"TF Hub model from local path {handle}", Path(handle)
        )
    if "://" not in handle:
        raise CourseError(f"{handle!r} is neither a TF Hub URL, a known name ({', '.join(HUB_MODELS)}) nor a path")
    module_dir = hub_module_dir(handle)
    if is_cached_module(module_dir):
        return LoadedModel(
            _load_savedmodel_dir(module_dir), "cache", label, f"{label} from the TF Hub cache", module_dir
        )
    why = "downloads disabled (allow_download=False)"
    if allow_download:
        if network_reachable(handle):
            try:
                resolved = hub_resolve(handle)
                return LoadedModel(
                    _load_savedmodel_dir(resolved),
                    "download",
                    label,
                    f"{label} downloaded into the TF Hub cache",
                    resolved,
                )
            except CourseError as error:
                why = str(error)
        else:
            why = f"offline: {urllib.parse.urlsplit(handle).hostname} is unreachable"
    fix = f"run `python -m course_lib prefetch` online (it fills {hub_cache_dir()})"
    if spec is None or not fallback:
        raise CourseError(f"TF Hub model {handle} is not cached and {why}; {fix}")
    _announce_fallback(label, why, fix)
    model = _build_application(
        spec.fallback_application, weights=None, classes=spec.fallback_classes, classifier_activation=None
    )
    return LoadedModel(
        model,
        "fallback",
        label,
        f"{spec.fallback_application}(weights=None, classes={spec.fallback_classes}) standing in "
        f"for {handle}: RANDOM weights ({why})",
    )


def _load_savedmodel_dir(path: Path) -> Any:
    import tensorflow as tf

    try:
        return tf.saved_model.load(str(path))
    except Exception as error:
        raise CourseError(
            f"{path} is not a loadable SavedModel ({first_line(error)}); for a broken cache entry, delete "
            "the folder and run `python -m course_lib prefetch` again"
        ) from error


def load_local(path: str | os.PathLike[str]) -> LoadedModel:
    """A model from a local SavedModel directory, .keras or .h5 file (or a .tflite file, as a Predictor).

    SavedModels exported by Keras come back as a Keras model (a TFSMLayer inside), so `model(x)` and
    `count_params()` work; other SavedModels come back as the `tf.saved_model.load` object.
    """
    path = Path(path)
    if not path.exists():
        raise CourseError(f"no model at {path}: expected a SavedModel directory, a .keras, .h5 or .tflite file")
    found = formats.detect_format(path)
    if found is None:
        raise CourseError(f"{path} is not a SavedModel directory, .keras, .h5 or .tflite file (or it is corrupt)")
    if found in (formats.KERAS, formats.H5, formats.TFLITE):
        predictor = formats.load(path, found)
        model = predictor.raw if found != formats.TFLITE else predictor
        return LoadedModel(model, "local", path.name, f"{found} model from {path}", path)
    return LoadedModel(_load_savedmodel_as_keras(path), "local", path.name, f"SavedModel from {path}", path)


def _load_savedmodel_as_keras(path: Path) -> Any:
    import keras

    loaded = _load_savedmodel_dir(path)
    signature = loaded.signatures.get("serving_default")
    if signature is None or not hasattr(loaded, "serve"):
        return loaded
    input_specs = list(signature.structured_input_signature[1].values())
    if len(input_specs) != 1:
        return loaded
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
    return keras.Sequential(
        [keras.Input(shape=tuple(input_specs[0].shape[1:]), dtype=input_specs[0].dtype.name), layer], name=path.name
    )

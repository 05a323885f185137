"""A production image classifier: a SavedModel, preprocessing in the graph, checked inputs.

The lecture's `ImageClassifier` loads with `keras.models.load_model(dir)` (fails on Keras 3 for a
SavedModel), preprocesses eagerly on the host, and calls `model.predict` per request (a fixed overhead
per call on Keras 3, measured in docs/benchmarks.md). This one loads the SavedModel's serving
signature with `tf.saved_model.load`, resizes and normalises inside one compiled `tf.function` whose
`input_signature` accepts any batch size and image size (traced once, at start-up), and rejects bad
input with a `CourseError` that says what to do, before TensorFlow fails deep inside a convolution.

Every architecture expects its own normalisation; feeding ResNet50 MobileNetV2's [-1, 1] inputs gives
confident garbage, not an error. So `preprocessing` is explicit: a mode or an architecture name.
`export_for_classifier` puts the preprocessing inside the SavedModel itself, so a server (TF Serving)
can take raw pixels and no client can get it wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from course_lib.errors import CourseError

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")
"""How pixels (RGB, 0..255) become model inputs, named as `keras.applications` names them:
'caffe' RGB->BGR then subtract the ImageNet mean (ResNet50, VGG); 'tf' scale to [-1, 1] (MobileNetV2,
InceptionV3, Xception, ResNet50V2); 'torch' scale to [0, 1] then standardise per channel (DenseNet);
'none' pass through (EfficientNet, ConvNeXt, MobileNetV3: they preprocess inside the model)."""

_MODE_BY_ARCHITECTURE = {
    **dict.fromkeys(("resnet50", "resnet101", "resnet152", "vgg16", "vgg19"), "caffe"),
    **dict.fromkeys(
        (
            "mobilenet",
            "mobilenetv2",
            "inceptionv3",
            "inceptionresnetv2",
            "xception",
            "resnet50v2",
            "resnet101v2",
            "resnet152v2",
            "nasnetmobile",
            "nasnetlarge",
        ),
        "tf",
    ),
    **dict.fromkeys(("densenet121", "densenet169", "densenet201"), "torch"),
    **dict.fromkeys(
        (
            "efficientnetb0",
            "efficientnetb1",
            "efficientnetb2",
            "efficientnetb3",
            "efficientnetb4",
            "efficientnetb5",
            "efficientnetb6",
            "efficientnetb7",
            "efficientnetv2b0",
            "efficientnetv2s",
            "convnexttiny",
            "convnextsmall",
            "convnextbase",
            "mobilenetv3small",
            "mobilenetv3large",
        ),
        "none",
    ),
}
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

METADATA_FILE = Path("assets.extra") / "course_classifier.json"
"""Written by `export_for_classifier` next to saved_model.pb; TF Serving ignores it."""

PIXEL_MAX = 255.0


class ModelLoadError(CourseError):
    """The directory is not a SavedModel this classifier can serve."""


class InputShapeError(CourseError):
    """The images have the wrong rank, size or channel count."""


class ChannelOrderError(InputShapeError):
    """Channels-first (NCHW) images given to a channels-last (NHWC) model."""


class EmptyBatchError(InputShapeError):
    """A batch with no images (or images with no pixels)."""


class InputDtypeError(CourseError):
    """Images that are not uint8 or floating-point numbers."""


class InputValueError(CourseError):
    """NaN, infinity, or values outside the raw pixel range 0..255."""


def preprocessing_mode(name: str) -> str:
    """The preprocessing mode for a mode name or an architecture name ('ResNet50' -> 'caffe')."""
    if not isinstance(name, str):
        raise CourseError(f"preprocessing must be a string such as 'caffe', 'tf' or 'resnet50', got {name!r}")
    if name in PREPROCESSING_MODES:
        return name
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    if key in _MODE_BY_ARCHITECTURE:
        return _MODE_BY_ARCHITECTURE[key]
    raise CourseError(
        f"unknown preprocessing {name!r}: use a mode from {PREPROCESSING_MODES} or an architecture name "
        f"(e.g. 'resnet50' -> 'caffe', 'mobilenet_v2' -> 'tf'). For another model, use the mode of its "
        "keras.applications preprocess_input."
    )


def preprocess_images(images: Any, mode: str, size: Sequence[int] | None = None) -> Any:
    """Resize a float NHWC batch of raw RGB pixels (0..255) to `size` and normalise it for `mode`.

    TensorFlow ops only, so it runs inside a compiled function or an exported SavedModel. The result
    matches `keras.applications.<arch>.preprocess_input` for the same mode.
    """
    import tensorflow as tf

    mode = preprocessing_mode(mode)
    x = tf.cast(images, tf.float32)
    if size is not None:
        # Bilinear with antialiasing, like Pillow's resize: a same-size resize returns the input exactly.
        x = tf.image.resize(x, (int(size[0]), int(size[1])), method="bilinear", antialias=True)
    if mode == "caffe":
        return x[..., ::-1] - tf.constant(_CAFFE_BGR_MEAN, tf.float32)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / PIXEL_MAX - tf.constant(_TORCH_MEAN, tf.float32)) / tf.constant(_TORCH_STD, tf.float32)
    return x


def validate_images(images: Any, channels: int = 3, single: bool = False) -> np.ndarray:
    """Check a batch (N, H, W, C) or, with `single`, one image (H, W, C); return it as float32.

    Raises a CourseError subclass whose message says how to fix the input: channels-first arrays,
    wrong channel counts, empty batches, non-numeric dtypes, NaN/inf and already-normalised values.
    """
    try:
        array = np.asarray(images)
    except (TypeError, ValueError) as error:
        if "inhomogeneous" in str(error):
            raise InputShapeError(
                "these images have different sizes, so they do not stack into one batch array: resize "
                "them to one size first (course_lib.data.load_image(name, size=...)) or call "
                "predict_single per image"
            ) from None
        raise InputDtypeError(f"images must be a numeric numpy array; could not convert: {error}") from None
    expected_rank = 3 if single else 4
    layout = "(height, width, channels)" if single else "(batch, height, width, channels)"
    if array.dtype == object or not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
        raise InputDtypeError(
            f"images must be uint8 (0..255) or floating point (0.0..255.0), got dtype {array.dtype}. "
            "Decode image files to pixels first (course_lib.data.load_image, PIL), then "
            "np.asarray(image, dtype=np.uint8) or .astype(np.float32)."
        )
    _check_rank(array, expected_rank, layout, channels)
    _check_channels(array, channels, layout)
    if array.size == 0:
        raise EmptyBatchError(
            f"got an empty batch of shape {array.shape}: pass at least one image with at least one pixel"
        )
    if array.dtype != np.uint8:
        _check_values(array)
    return array.astype(np.float32, copy=False)


def _check_rank(array: np.ndarray, expected_rank: int, layout: str, channels: int) -> None:
    if array.ndim == expected_rank:
        return
    shape = array.shape
    if expected_rank == 4 and array.ndim == 3:
        if shape[-1] == channels:
            fix = "use predict_single(image), or add the batch axis with image[np.newaxis]"
        elif shape[0] == channels:
            fix = (
                "it looks channels-first (CHW): transpose with np.transpose(image, (1, 2, 0)), then use "
                "predict_single(image)"
            )
        else:
            fix = (
                "if these are grayscale images (N, H, W), make them RGB with "
                f"np.repeat(x[..., np.newaxis], {channels}, axis=-1)"
            )
        raise InputShapeError(f"predict() takes a batch {layout}, got shape {shape}: {fix}")
    if expected_rank == 3 and array.ndim == 4 and shape[0] == 1:
        raise InputShapeError(
            f"predict_single() takes one image {layout}, got a batch of shape {shape}: "
            "use predict(images), or pass images[0]"
        )
    if expected_rank == 3 and array.ndim == 2:
        raise InputShapeError(
            f"expected {layout}, got shape {shape}: a grayscale image has no channel axis; make it RGB with "
            f"np.repeat(x[..., np.newaxis], {channels}, axis=-1)"
        )
    raise InputShapeError(f"expected an array of rank {expected_rank} {layout}, got shape {shape}")


def _check_channels(array: np.ndarray, channels: int, layout: str) -> None:
    if array.shape[-1] == channels:
        return
    channel_axis = array.ndim - 3  # 1 for NCHW, 0 for CHW
    if array.shape[channel_axis] == channels:
        order = "(0, 2, 3, 1)" if array.ndim == 4 else "(1, 2, 0)"
        name = "NCHW" if array.ndim == 4 else "CHW"
        raise ChannelOrderError(
            f"got shape {array.shape}, which looks channels-first ({name}, PyTorch's layout); this model is "
            f"channels-last {layout}. Transpose with np.transpose(x, {order})"
        )
    fixes = {
        1: f"grayscale: repeat the channel with np.repeat(x, {channels}, axis=-1)",
        4: "RGBA: drop the alpha channel with x[..., :3]",
    }
    fix = fixes.get(array.shape[-1], "convert the images to RGB") if channels == 3 else "check the layout"
    raise InputShapeError(
        f"the model takes {channels} channels, got shape {array.shape} with {array.shape[-1]} on the last axis: {fix}"
    )


def _check_values(array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputValueError(
            f"images contain {bad} NaN or infinite value(s): check the decoding or any arithmetic before the "
            "classifier; a NaN pixel turns every score into NaN"
        )
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > PIXEL_MAX:
        raise InputValueError(
            f"pixel values must be raw RGB in 0..255, got values from {low:.3g} to {high:.3g}. They look "
            "already preprocessed (preprocess_input gives about -124..152 or -1..1): pass the raw image; "
            "the classifier preprocesses it"
        )


def _read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path} is unreadable ({error}): re-export with export_for_classifier") from None


def _check_model_dir(model_dir: Path) -> None:
    if model_dir.is_file():
        how = {".keras": "keras.saving.load_model(path)", ".h5": "keras.saving.load_model(path)"}.get(
            model_dir.suffix, "the loader of its format"
        )
        raise ModelLoadError(
            f"{model_dir} is a file, but ImageClassifier serves a SavedModel directory. Load the file "
            f"with {how}, then export it with model.export(directory) or "
            "export_for_classifier(model, directory, ...)"
        )
    if not model_dir.is_dir():
        raise ModelLoadError(
            f"no SavedModel at {model_dir}: the directory does not exist. Export one with model.export(directory)"
        )
    if not (model_dir / "saved_model.pb").is_file():
        versions = sorted(p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
        hint = (
            f" It has version folders {versions}: pass {model_dir / versions[-1]}"
            if versions
            else " Export one with model.export(directory)"
        )
        raise ModelLoadError(f"{model_dir} holds no saved_model.pb, so it is not a SavedModel.{hint}")


class ImageClassifier:
    """Classify batches of raw RGB images with a SavedModel, through one compiled function.

    `preprocessing` is a mode from PREPROCESSING_MODES or an architecture name ('resnet50'); leave it
    None for a model saved by `export_for_classifier`, which carries its own. `input_size` (height,
    width) is read from the model's signature; give it only for models that accept any size.
    Batches above `max_batch_size` run in chunks, which bounds memory per request.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        preprocessing: str | None = None,
        input_size: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        signature: str = "serving_default",
        output_key: str | None = None,
        max_batch_size: int = 64,
    ) -> None:
        import tensorflow as tf

        self.model_dir = Path(model_dir)
        _check_model_dir(self.model_dir)
        metadata = _read_metadata(self.model_dir)
        self.includes_preprocessing = bool(metadata.get("includes_preprocessing", False))
        try:
            self._loaded = tf.saved_model.load(str(self.model_dir))
        except Exception as error:  # TF raises many types for a broken SavedModel
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelLoadError(f"could not load the SavedModel at {self.model_dir}: {first_line}") from None
        self._signature = self._find_signature(signature)
        self._input_name, input_spec = self._find_input()
        self._output_key = self._find_output(output_key)
        self.channels = int(input_spec.shape[-1])
        self._input_dtype = input_spec.dtype
        self.preprocessing = self._choose_preprocessing(preprocessing, metadata)
        self.input_size = self._choose_input_size(input_spec, input_size, metadata)
        self.num_classes = int(self._signature.structured_outputs[self._output_key].shape[-1])
        self.class_names = self._choose_class_names(class_names, metadata)
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise CourseError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        self.max_batch_size = max_batch_size
        self._classify = self._compile()
        # Trace now: a broken model fails at start-up, not on the first request.
        self._classify.get_concrete_function()

    def _find_signature(self, name: str) -> Any:
        signatures = dict(self._loaded.signatures)
        if name not in signatures:
            raise ModelLoadError(
                f"the SavedModel at {self.model_dir} has no signature {name!r}; it has "
                f"{sorted(signatures) or 'none'}. Pass signature=... or re-export with "
                "model.export(directory)"
            )
        return signatures[name]

    def _find_input(self) -> tuple[str, Any]:
        _, inputs = self._signature.structured_input_signature
        if len(inputs) != 1:
            raise ModelLoadError(f"ImageClassifier feeds one image tensor, but the signature takes {sorted(inputs)}")
        name, spec = next(iter(inputs.items()))
        if spec.shape.rank != 4 or spec.shape[-1] is None:
            raise ModelLoadError(
                f"the model's input {name!r} has shape {spec.shape}; an image model takes (batch, height, "
                "width, channels) with a known channel count"
            )
        return name, spec

    def _find_output(self, output_key: str | None) -> str:
        outputs = self._signature.structured_outputs
        if output_key is not None and output_key not in outputs:
            raise ModelLoadError(f"no output {output_key!r} in the signature; outputs: {sorted(outputs)}")
        if output_key is None and len(outputs) != 1:
            raise ModelLoadError(f"the signature has several outputs {sorted(outputs)}: choose one with output_key=...")
        key = output_key if output_key is not None else next(iter(outputs))
        shape = outputs[key].shape
        if shape.rank != 2 or shape[-1] is None:
            raise ModelLoadError(
                f"output {key!r} has shape {shape}; a classifier returns scores of shape (batch, classes)"
            )
        return key

    def _choose_preprocessing(self, requested: str | None, metadata: dict[str, Any]) -> str:
        if self.includes_preprocessing:
            if requested not in (None, "none"):
                raise CourseError(
                    f"this SavedModel already preprocesses its input ({metadata.get('preprocessing')!r}, "
                    f"exported by export_for_classifier); preprocessing={requested!r} would apply it "
                    "twice. Leave it out"
                )
            return preprocessing_mode(str(metadata.get("preprocessing", "none")))
        if requested is None:
            raise CourseError(
                "say how this model's inputs were normalised in training: preprocessing='caffe' for "
                "ResNet50/VGG, 'tf' for MobileNetV2/InceptionV3, 'torch' for DenseNet, 'none' if the "
                "model does it itself "
                "(or an architecture name, e.g. preprocessing='resnet50')"
            )
        return preprocessing_mode(requested)

    def _choose_input_size(
        self, spec: Any, requested: Sequence[int] | None, metadata: dict[str, Any]
    ) -> tuple[int, int] | None:
        declared = (spec.shape[1], spec.shape[2])
        if None not in declared:
            size = (int(declared[0]), int(declared[1]))
            if requested is not None and tuple(int(s) for s in requested) != size:
                raise CourseError(f"input_size={tuple(requested)} but the model is built for {size}: leave it out")
            return size
        if requested is None:
            requested = metadata.get("input_size")
        if requested is None:
            return None  # a fully convolutional model: images keep their size
        if len(requested) != 2 or any(int(s) < 1 for s in requested):
            raise CourseError(f"input_size must be (height, width) in pixels, got {requested!r}")
        return (int(requested[0]), int(requested[1]))

    def _choose_class_names(self, names: Sequence[str] | None, metadata: dict[str, Any]) -> list[str] | None:
        chosen: list[str] | None = list(names) if names is not None else metadata.get("class_names")
        if chosen is not None and len(chosen) != self.num_classes:
            raise CourseError(f"class_names has {len(chosen)} names but the model outputs {self.num_classes} scores")
        return chosen

    def _compile(self) -> Any:
        import tensorflow as tf

        signature, input_name, output_key = self._signature, self._input_name, self._output_key
        size, dtype = self.input_size, self._input_dtype
        # A model that includes preprocessing resizes and normalises itself: doing it twice would be wrong.
        mode = "none" if self.includes_preprocessing else self.preprocessing
        resize_to = None if self.includes_preprocessing else size

        spec = tf.TensorSpec([None, None, None, self.channels], tf.float32, name="images")

        @tf.function(input_signature=[spec])
        def classify(images: tf.Tensor) -> tf.Tensor:
            inputs = preprocess_images(images, mode, resize_to)
            inputs = tf.saturate_cast(tf.round(inputs), dtype) if dtype.is_integer else tf.cast(inputs, dtype)
            return signature(**{input_name: inputs})[output_key]

        return classify

    @property
    def tracing_count(self) -> int:
        """How many times the compiled function was traced: 1 for the life of the classifier."""
        return int(self._classify.experimental_get_tracing_count())

    def predict(self, images: Any) -> np.ndarray:
        """Scores (N, num_classes) for a batch of raw RGB images (N, H, W, C), uint8 or float 0..255."""
        batch = validate_images(images, self.channels)
        chunks = [
            self._classify(batch[i : i + self.max_batch_size]).numpy()
            for i in range(0, len(batch), self.max_batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def predict_single(self, image: Any) -> np.ndarray:
        """Scores (num_classes,) for one raw RGB image (H, W, C)."""
        return self.predict(validate_images(image, self.channels, single=True)[np.newaxis])[0]

    def top_k(self, images: Any, k: int = 5) -> list[list[Any]]:
        """The k best classes per image, best first, as course_lib.data.Prediction tuples.

        1000-class models are decoded with the shipped ImageNet names; other models use `class_names`
        (or 'class_<id>'). Accepts one image (H, W, C) as a batch of one.
        """
        from course_lib import data

        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= self.num_classes:
            raise CourseError(f"k must be an integer from 1 to {self.num_classes}, got {k!r}")
        array = np.asarray(images)
        scores = self.predict_single(array)[np.newaxis] if array.ndim == 3 else self.predict(array)
        if self.class_names is None and self.num_classes == data.NUM_IMAGENET_CLASSES:
            return data.decode_top_k(scores, int(k))
        names = self.class_names or [f"class_{i}" for i in range(self.num_classes)]
        decoded = []
        for row in scores:
            best = np.argsort(-row, kind="stable")[:k]
            decoded.append([data.Prediction(int(i), "", names[i], float(row[i])) for i in best])
        return decoded

    def __repr__(self) -> str:
        size = "any size" if self.input_size is None else f"{self.input_size[0]}x{self.input_size[1]}"
        where = "in the model" if self.includes_preprocessing else "in the classifier"
        return (
            f"ImageClassifier({str(self.model_dir)!r}, input {size}x{self.channels}, preprocessing "
            f"{self.preprocessing!r} {where}, {self.num_classes} classes)"
        )


def export_for_classifier(
    model: Any,
    export_dir: str | os.PathLike[str],
    preprocessing: str,
    input_size: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Save `model` as a SavedModel that takes raw RGB pixels of any size and does its own preprocessing.

    The serving signature resizes to the model's input size and normalises for `preprocessing`, so any
    client (TF Serving over REST, ImageClassifier) sends pixels and cannot pick the wrong normalisation.
    A small JSON in assets.extra/ records the choice. Returns the export directory.
    """
    import tensorflow as tf

    mode = preprocessing_mode(preprocessing)
    target = Path(export_dir)
    if target.exists() and any(target.iterdir()):
        raise CourseError(f"{target} exists and is not empty: export to a new (version) directory")
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if len(inputs) != 1:
        raise CourseError("export_for_classifier needs a built Keras model with exactly one image input")
    input_shape = tuple(inputs[0].shape)
    if len(input_shape) != 4:
        raise CourseError(f"expected an image model with input (batch, height, width, channels), got {input_shape}")
    size = tuple(input_shape[1:3]) if None not in input_shape[1:3] else input_size
    if size is None:
        raise CourseError("this model accepts any image size: pass input_size=(height, width) to resize to")
    if input_size is not None and tuple(int(s) for s in input_size) != tuple(size):
        raise CourseError(f"input_size={tuple(input_size)} but the model is built for {tuple(size)}: leave it out")
    size = (int(size[0]), int(size[1]))
    channels = int(input_shape[3])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="images")])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": model(preprocess_images(images, mode, size), training=False)}

    # Track the variables, not the Keras model: saving a tracked Keras 3 model traces its call again
    # (twice as slow to save, and to load), and the serving signature is all a server needs.
    holder = tf.Module()
    holder.model_variables = list(model.variables)  # pyright: ignore[reportAttributeAccessIssue]  (tf.Module tracks it)
    signatures = {"serving_default": serve.get_concrete_function()}
    tf.saved_model.save(holder, str(target), signatures=signatures)
    metadata: dict[str, Any] = {"includes_preprocessing": True, "preprocessing": mode, "input_size": list(size)}
    if class_names is not None:
        metadata["class_names"] = list(class_names)
    (target / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (target / METADATA_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return target

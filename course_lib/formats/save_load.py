"""Save one Keras model in any deployment format and load it back as one kind of callable.

Keras 3 changed the rules the lecture (TF 2.14) relies on:
`model.save('dir/')` no longer writes a SavedModel (`model.export` does) and `load_model` no longer
reads one (`tf.saved_model.load` does). TFLite files run through LiteRT's interpreter, the successor of
the deprecated `tf.lite.Interpreter`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wurlitzer

from course_lib.errors import CourseError, first_line
from course_lib.formats.names import (
    FILE_SUFFIXES,
    H5,
    KERAS,
    SAVEDMODEL,
    TFLITE,
    TFLITE_DYNAMIC,
    TFLITE_FORMATS,
    TFLITE_INT8,
    describe_content,
    detect_format,
    format_from_path,
    normalize_format,
    size_on_disk,
)


@dataclass(frozen=True)
class SavedArtifact:
    """What `save` wrote: where, in which format, how big (bytes, directories summed) and how long it took."""

    path: Path
    format: str
    size_bytes: int
    save_seconds: float


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Silence what saving and converting print (Python warnings, absl, C++ lines on fd 1/2).

    nbgrader zeroes a test cell that writes to stderr, and the converter's chatter hides the result.
    The captured text is yielded so that errors can quote it. wurlitzer captures what C++ writes to
    file descriptors 1 and 2 (flushing C's stdio buffers too); Python's own streams and loggers are
    redirected here.
    """
    captured = io.StringIO()
    # TensorFlow's Python logger holds its own handle on the original stream ("INFO:tensorflow:Assets
    # written to ..."), so redirecting sys.stdout is not enough: raise its level too.
    loggers = [logging.getLogger("absl"), logging.getLogger("tensorflow")]
    old_levels = [logger.level for logger in loggers]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with (
            wurlitzer.pipes(stdout=captured, stderr=wurlitzer.STDOUT),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(captured),
            contextlib.redirect_stderr(captured),
        ):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for logger, level in zip(loggers, old_levels, strict=True):
            logger.setLevel(level)


def _check_file_suffix(path: Path, fmt: str) -> None:
    suffixes = FILE_SUFFIXES.get(fmt)
    if suffixes and path.suffix.lower() not in suffixes:
        raise CourseError(
            f"a {fmt} file must end in {' or '.join(suffixes)} (got {path.name!r}); "
            f"e.g. {path.with_suffix(suffixes[0]).name}"
        )
    if fmt == SAVEDMODEL and path.suffix.lower() in (".keras", ".h5", ".hdf5", ".tflite"):
        raise CourseError(
            f"a SavedModel is a directory, but {path.name!r} has the file suffix {path.suffix!r}: "
            f"use a directory name such as {path.stem!r}, or fmt={format_from_path(path)!r}"
        )


def _representative_dataset(data: Any) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter wants a generator of [one-sample batch]; accept an array (N, ...) or an iterable."""
    if data is None:
        raise CourseError(
            "int8 quantization needs representative_data: ~100 real input samples (an array of shape "
            "(N, ...) like the model's input) to calibrate activation ranges; random noise calibrates badly"
        )
    samples = [np.asarray(sample, dtype=np.float32) for sample in data]
    if not samples:
        raise CourseError("representative_data is empty: pass at least one input sample (ideally ~100)")

    def generate() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample[np.newaxis, ...]]

    return generate


def _convert_to_tflite(model: Any, fmt: str, representative_data: Any) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt in (TFLITE_DYNAMIC, TFLITE_INT8):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == TFLITE_INT8:
        converter.representative_dataset = _representative_dataset(representative_data)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def is_keras_model(model: Any) -> bool:
    """True for a keras.Model (the formats other than SavedModel need one)."""
    try:
        import keras
    except ImportError:  # pragma: no cover - keras ships with tensorflow
        return False
    return isinstance(model, keras.Model)


def save(
    model: Any,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    representative_data: Any = None,
) -> SavedArtifact:
    """Write `model` to `path` in `fmt` (inferred from the suffix if None) and time it.

    SavedModel uses `model.export` (Keras 3's replacement for `model.save('dir/')`), or
    `tf.saved_model.save` for a plain `tf.Module`; measured on TF 2.21, `export` stores every variable
    twice, so the directory is about 2x the weights (docs/benchmarks.md). 'tflite-int8' needs
    `representative_data`.
    """
    path = Path(path)
    fmt = normalize_format(fmt) if fmt is not None else format_from_path(path)
    _check_file_suffix(path, fmt)
    if representative_data is not None and fmt != TFLITE_INT8:
        representative_data = None  # only int8 calibrates; accepting it keeps compare() simple
    is_keras = is_keras_model(model)
    if not is_keras and fmt != SAVEDMODEL:
        raise CourseError(f"saving as {fmt} needs a keras.Model, got {type(model).__name__}")
    if fmt == TFLITE_INT8:
        _representative_dataset(representative_data)  # fail early, before the slow converter
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        with _quiet():
            if fmt == SAVEDMODEL:
                if is_keras:
                    model.export(str(path), format="tf_saved_model", verbose=False)
                else:
                    import tensorflow as tf

                    tf.saved_model.save(model, str(path))
            elif fmt in (KERAS, H5):
                model.save(str(path))
            else:
                path.write_bytes(_convert_to_tflite(model, fmt, representative_data))
    except CourseError:
        raise
    except Exception as error:
        raise CourseError(f"could not save the model as {fmt} to {path}: {first_line(error)}") from error
    seconds = time.perf_counter() - start
    return SavedArtifact(path=path, format=fmt, size_bytes=size_on_disk(path), save_seconds=seconds)


class Predictor:
    """A loaded model as one callable: numpy batch in, numpy batch out, whatever the format.

    Every format answers in float32, so outputs can be compared with the Keras model's.
    """

    def __init__(self, path: Path, fmt: str, predict: Callable[[np.ndarray], np.ndarray], raw: Any) -> None:
        self.path = path
        self.format = fmt
        self.raw = raw  # the underlying object: keras.Model, loaded SavedModel or LiteRT Interpreter
        self._predict = predict

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self._predict(np.asarray(inputs))

    def __repr__(self) -> str:
        return f"Predictor(format={self.format!r}, path={str(self.path)!r})"


def _load_keras(path: Path, fmt: str) -> Predictor:
    import keras

    model = keras.models.load_model(str(path), compile=False)
    if not isinstance(model, keras.Model):  # load_model is untyped: pyright sees `object | None`
        raise CourseError(f"{path} did not load as a keras.Model (got {type(model).__name__})")

    def predict(inputs: np.ndarray) -> np.ndarray:
        return np.asarray(model(inputs, training=False), dtype=np.float32)

    return Predictor(path, fmt, predict, model)


def _load_savedmodel(path: Path) -> Predictor:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    signatures = dict(loaded.signatures)
    if "serving_default" not in signatures:
        raise CourseError(
            f"the SavedModel at {path} has no 'serving_default' signature (it has: "
            f"{', '.join(signatures) or 'none'}); export it with model.export(path)"
        )
    serve = signatures["serving_default"]
    input_specs = serve.structured_input_signature[1]
    output_names = sorted(serve.structured_outputs)
    if len(input_specs) != 1 or len(output_names) != 1:
        raise CourseError(
            f"the SavedModel at {path} has {len(input_specs)} inputs and {len(output_names)} outputs; "
            "this predictor handles one of each: call loaded.signatures['serving_default'] yourself"
        )
    ((input_name, spec),) = input_specs.items()
    output_name = output_names[0]

    def predict(inputs: np.ndarray) -> np.ndarray:
        tensor = tf.convert_to_tensor(inputs, dtype=spec.dtype)
        return serve(**{input_name: tensor})[output_name].numpy().astype(np.float32)

    return Predictor(path, SAVEDMODEL, predict, loaded)


def _quantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    dtype = detail["dtype"]
    if scale == 0:  # not quantized
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if scale == 0:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _load_tflite(path: Path, fmt: str) -> Predictor:
    from ai_edge_litert.interpreter import Interpreter

    with _quiet():
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise CourseError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; this predictor handles one of each"
        )
    input_detail = inputs[0]

    def predict(batch: np.ndarray) -> np.ndarray:
        nonlocal input_detail
        current = tuple(interpreter.get_input_details()[0]["shape"])
        if tuple(batch.shape) != current:
            try:
                interpreter.resize_tensor_input(input_detail["index"], list(batch.shape))
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as error:
                expected = tuple(input_detail["shape_signature"])
                raise CourseError(
                    f"input shape {batch.shape} does not fit the TFLite model's {expected} (-1 = any)"
                ) from error
            input_detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(input_detail["index"], _quantize(batch.astype(np.float32), input_detail))
        interpreter.invoke()
        output_detail = interpreter.get_output_details()[0]
        return _dequantize(interpreter.get_tensor(output_detail["index"]), output_detail)

    return Predictor(path, fmt, predict, interpreter)


def load(path: str | os.PathLike[str], fmt: str | None = None) -> Predictor:
    """Load a saved model as a `Predictor` (numpy in, float32 numpy out).

    The format is read from the content when `fmt` is None. A `fmt` that contradicts the content,
    a missing path or a corrupt file raise CourseError naming the expected format.
    """
    path = Path(path)
    expected = normalize_format(fmt) if fmt is not None else None
    if not path.exists():
        wanted = f" (expected a {expected} model)" if expected else ""
        raise CourseError(f"no such file or directory: {path}{wanted}; check the path or save the model first")
    found = detect_format(path)
    if expected is None:
        if found is None:
            raise CourseError(
                f"{path} is not a model this course can load: {describe_content(path)}; expected a "
                "SavedModel directory, a .keras, .h5 or .tflite file"
            )
        expected = found
    family = TFLITE if expected in TFLITE_FORMATS else expected
    if found != family:
        what = {
            SAVEDMODEL: "a SavedModel directory (with saved_model.pb)",
            KERAS: "a .keras file",
            H5: "an .h5 file",
            TFLITE: "a .tflite file",
        }[family]
        hint = f"; load it with fmt={found!r}" if found else ""
        raise CourseError(f"expected {what} at {path}, but {describe_content(path)}{hint}")
    try:
        if family in (KERAS, H5):
            return _load_keras(path, expected)
        if family == SAVEDMODEL:
            return _load_savedmodel(path)
        return _load_tflite(path, expected)
    except CourseError:
        raise
    except Exception as error:
        raise CourseError(
            f"could not load {path} as {expected} ({first_line(error)}); the file may be corrupt or "
            "need custom objects: re-save it, or load it with the library that wrote it"
        ) from error

"""Save one Keras model in each deployment format, load it back, and compare the formats.

Notebook 03 measures what the lecture only asserts: size on disk, save and load time, and whether
the outputs still match the Keras model. Keras 3 changed the rules the lecture (TF 2.14) relies on:
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
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from course_lib.errors import CourseError

SAVEDMODEL = "savedmodel"
KERAS = "keras"
H5 = "h5"
TFLITE = "tflite"
TFLITE_DYNAMIC = "tflite-dynamic"
TFLITE_INT8 = "tflite-int8"

ALL_FORMATS: tuple[str, ...] = (SAVEDMODEL, KERAS, H5, TFLITE, TFLITE_DYNAMIC, TFLITE_INT8)
TFLITE_FORMATS: tuple[str, ...] = (TFLITE, TFLITE_DYNAMIC, TFLITE_INT8)

DESCRIPTIONS = {
    SAVEDMODEL: "SavedModel directory (graph + variables): TF Serving, C++/Java/Go, TF.js converter",
    KERAS: ".keras zip (Keras 3 native): architecture + weights + optimizer, Python/Keras only",
    H5: ".h5 (legacy HDF5): kept for old tools and TF < 2.13 code",
    TFLITE: ".tflite, float32 weights: mobile/edge runtime (LiteRT)",
    TFLITE_DYNAMIC: ".tflite, dynamic-range quantization: int8 weights, float activations, no data needed",
    TFLITE_INT8: ".tflite, full int8 (int8 in/out): needs a representative dataset; NPUs, MCUs, Edge TPU",
}

_ALIASES = {
    "saved-model": SAVEDMODEL,
    "hdf5": H5,
    ".h5": H5,
    ".keras": KERAS,
    "tflite-float32": TFLITE,
    "tflite-float": TFLITE,
    "tflite-dynamic-range": TFLITE_DYNAMIC,
    "tflite-drq": TFLITE_DYNAMIC,
}
_FILE_SUFFIXES = {KERAS: (".keras",), H5: (".h5", ".hdf5"), **{fmt: (".tflite",) for fmt in TFLITE_FORMATS}}
_DEFAULT_NAMES = {
    SAVEDMODEL: "model_savedmodel",
    KERAS: "model.keras",
    H5: "model.h5",
    TFLITE: "model_float32.tflite",
    TFLITE_DYNAMIC: "model_dynamic.tflite",
    TFLITE_INT8: "model_int8.tflite",
}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
_TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8


@dataclass(frozen=True)
class SavedArtifact:
    """What `save` wrote: where, in which format, how big (bytes, directories summed) and how long it took."""

    path: Path
    format: str
    size_bytes: int
    save_seconds: float


@dataclass(frozen=True)
class FormatResult:
    """One row of `compare`: a format's size, save and load time, and output drift from the Keras model."""

    format: str
    size_bytes: int
    save_seconds: float
    load_seconds: float
    max_abs_diff: float
    path: Path


@dataclass(frozen=True)
class FormatChoice:
    """The answer of `choose_format`: a format from ALL_FORMATS and the reason, in one sentence."""

    format: str
    reason: str


def normalize_format(fmt: str) -> str:
    """The canonical name of a format ('SavedModel' -> 'savedmodel'); unknown names list the known ones."""
    if not isinstance(fmt, str):
        raise CourseError(f"format must be a string, one of {', '.join(ALL_FORMATS)}; got {fmt!r}")
    key = fmt.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in ALL_FORMATS:
        raise CourseError(f"unknown model format {fmt!r}; known formats: {', '.join(ALL_FORMATS)}")
    return key


def format_from_path(path: str | os.PathLike[str]) -> str:
    """Guess the format from a path's suffix: .keras, .h5/.hdf5, .tflite, or no suffix for a SavedModel."""
    suffix = Path(path).suffix.lower()
    for fmt in (KERAS, H5, TFLITE):
        if suffix in _FILE_SUFFIXES[fmt]:
            return fmt
    if suffix == "":
        return SAVEDMODEL
    raise CourseError(
        f"cannot tell the format of {path} from its suffix {suffix!r}: use .keras, .h5, .tflite, "
        f"a directory for a SavedModel, or pass fmt= (one of {', '.join(ALL_FORMATS)})"
    )


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """The format a file or directory really holds, read from its content; None if it is none of ours.

    TFLite variants share one file format, so every .tflite file reports 'tflite'.
    """
    path = Path(path)
    if path.is_dir():
        return SAVEDMODEL if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file() else None
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(_ZIP_SIGNATURE):
        return KERAS
    if head == _HDF5_SIGNATURE:
        return H5
    if head[4:8] == _TFLITE_IDENTIFIER:
        return TFLITE
    return None


def size_on_disk(path: str | os.PathLike[str]) -> int:
    """Bytes of a file, or of every file under a directory (a SavedModel is a directory)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Silence what saving and converting print (Python warnings, absl, C++ lines on fd 1/2).

    nbgrader zeroes a test cell that writes to stderr, and the converter's chatter hides the result.
    The captured text is yielded so that errors can quote it.
    """
    captured = io.StringIO()
    # TensorFlow's Python logger holds its own handle on the original stream ("INFO:tensorflow:Assets
    # written to ..."), so redirecting sys.stdout is not enough: raise its level too.
    loggers = [logging.getLogger("absl"), logging.getLogger("tensorflow")]
    old_levels = [logger.level for logger in loggers]
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for fd in (1, 2):
                try:
                    saved_fds.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:
                    pass
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            with warnings.catch_warnings(), contextlib.redirect_stdout(captured), \
                    contextlib.redirect_stderr(captured):
                warnings.simplefilter("ignore")
                yield captured
        finally:
            for logger, level in zip(loggers, old_levels, strict=True):
                logger.setLevel(level)
            for fd, saved in saved_fds:
                os.dup2(saved, fd)
                os.close(saved)
            sink.seek(0)
            captured.write(sink.read().decode("utf-8", "replace"))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _check_file_suffix(path: Path, fmt: str) -> None:
    suffixes = _FILE_SUFFIXES.get(fmt)
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


def _is_keras_model(model: Any) -> bool:
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
    is_keras = _is_keras_model(model)
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
        raise CourseError(f"could not save the model as {fmt} to {path}: {_first_line(error)}") from error
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
    (input_name, spec), = input_specs.items()
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


_CONTENT_NAMES = {
    SAVEDMODEL: "a SavedModel",
    KERAS: "a .keras (zip) model",
    H5: "an .h5 (HDF5) model",
    TFLITE: "a TFLite flatbuffer",
}


def _describe_content(path: Path) -> str:
    found = detect_format(path)
    if found is not None:
        return f"it holds {_CONTENT_NAMES[found]}"
    if path.is_dir():
        return "it is a directory without saved_model.pb"
    return "its content is not a model file (corrupt, truncated or another file type)"


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
                f"{path} is not a model this course can load: {_describe_content(path)}; expected a "
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
        raise CourseError(f"expected {what} at {path}, but {_describe_content(path)}{hint}")
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
            f"could not load {path} as {expected} ({_first_line(error)}); the file may be corrupt or "
            "need custom objects: re-save it, or load it with the library that wrote it"
        ) from error


def compare(
    model: Any,
    sample_input: np.ndarray,
    formats: Sequence[str] = ALL_FORMATS,
    workdir: str | os.PathLike[str] | None = None,
    representative_data: Any = None,
) -> list[FormatResult]:
    """Save `model` in each format, load it back, and measure: one row per format.

    `max_abs_diff` is the largest |output - Keras output| on `sample_input`. Int8 calibrates on
    `representative_data`, or on `sample_input` when none is given. Without `workdir` the files go to
    a temporary directory that is deleted afterwards (the rows' paths then no longer exist).
    """
    chosen = [normalize_format(fmt) for fmt in formats]
    if not chosen:
        raise CourseError(f"formats is empty: pass some of {', '.join(ALL_FORMATS)}")
    if not _is_keras_model(model):
        raise CourseError(f"compare needs a keras.Model, got {type(model).__name__}")
    sample = np.asarray(sample_input, dtype=np.float32)
    try:
        reference = np.asarray(model(sample, training=False), dtype=np.float32)
    except Exception as error:
        raise CourseError(
            f"the model rejects sample_input of shape {sample.shape} ({_first_line(error)}): "
            "pass a batch shaped like the model's input, batch dimension first"
        ) from error
    calibration = representative_data if representative_data is not None else sample
    with contextlib.ExitStack() as stack:
        folder = Path(workdir) if workdir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        rows = []
        for fmt in chosen:
            artifact = save(model, folder / _DEFAULT_NAMES[fmt], fmt, calibration if fmt == TFLITE_INT8 else None)
            start = time.perf_counter()
            predictor = load(artifact.path, fmt)
            load_seconds = time.perf_counter() - start
            output = predictor(sample)
            rows.append(
                FormatResult(
                    format=fmt,
                    size_bytes=artifact.size_bytes,
                    save_seconds=artifact.save_seconds,
                    load_seconds=load_seconds,
                    max_abs_diff=float(np.max(np.abs(output - reference))),
                    path=artifact.path,
                )
            )
    return rows


def human_size(size_bytes: int) -> str:
    """1536 -> '1.5 KiB': binary units, as `du -h` and GPU memory tools count."""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_table(rows: Iterable[FormatResult]) -> str:
    """The rows of `compare` as a Markdown table (no pandas needed): print it or show it with Markdown()."""
    lines = [
        "| format | size (bytes) | size | save (s) | load (s) | max abs diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.format} | {row.size_bytes:,} | {human_size(row.size_bytes)} | {row.save_seconds:.3f} "
            f"| {row.load_seconds:.3f} | {row.max_abs_diff:.3g} |"
        )
    return "\n".join(lines)


def plot_sizes(rows: Sequence[FormatResult], ax: Any = None) -> Any:
    """A horizontal bar chart of size on disk per format; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    created = ax is None
    if created:
        _figure, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    largest = max((row.size_bytes for row in rows), default=0)
    unit, divisor = ("MiB", 1024**2) if largest >= 10 * 1024**2 else ("KiB", 1024)
    bars = ax.barh([row.format for row in rows], [row.size_bytes / divisor for row in rows], color="tab:blue")
    ax.bar_label(bars, labels=[human_size(row.size_bytes) for row in rows], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel(f"size on disk ({unit})")
    ax.set_title("One model, saved in each format")
    ax.margins(x=0.2)
    if created:
        ax.figure.tight_layout()
    return ax


_TARGET_ALIASES = {
    "android": "mobile",
    "ios": "mobile",
    "phone": "mobile",
    "raspberry-pi": "edge",
    "embedded": "edge",
    "mcu": "microcontroller",
    "edge-tpu": "accelerator",
    "npu": "accelerator",
    "dsp": "accelerator",
    "tensorflow-serving": "tf-serving",
    "serving": "tf-serving",
    "tfserving": "tf-serving",
    "server": "tf-serving",
    "cpp": "other-language",
    "c++": "other-language",
    "java": "other-language",
    "go": "other-language",
    "browser": "other-language",
    "tfjs": "other-language",
    "python": "python",
    "training": "python",
    "checkpoint": "python",
    "fine-tuning": "python",
    "research": "python",
    "legacy": "legacy",
    "tf1": "legacy",
    "old-keras": "legacy",
}
TARGETS: tuple[str, ...] = (
    "mobile", "edge", "microcontroller", "accelerator", "tf-serving", "other-language", "python", "legacy",
)


def choose_format(target: str, *, has_representative_data: bool = False) -> FormatChoice:
    """Pick the format for a deployment target: the lecture's decision tree, made specific.

    The lecture says mobile/edge -> TFLite, TF Serving -> SavedModel, else "SavedModel or H5". On
    Keras 3 H5 is legacy, so: Python training and checkpoints -> .keras; any server or non-Python
    runtime -> SavedModel; H5 only for tools that cannot read anything newer. For TFLite, the
    quantization follows from the hardware and from whether calibration data exists.
    """
    if not isinstance(target, str):
        raise CourseError(f"target must be a string, one of {', '.join(TARGETS)}; got {target!r}")
    key = target.strip().lower().replace("_", "-").replace(" ", "-")
    key = _TARGET_ALIASES.get(key, key)
    if key not in TARGETS:
        raise CourseError(
            f"unknown deployment target {target!r}; known targets: {', '.join(TARGETS)} "
            f"(aliases: {', '.join(sorted(_TARGET_ALIASES))})"
        )
    if key in ("microcontroller", "accelerator"):
        reason = "integer-only hardware runs only full-int8 models"
        if not has_representative_data:
            reason += "; first collect ~100 real input samples to calibrate with"
        return FormatChoice(TFLITE_INT8, reason)
    if key in ("mobile", "edge"):
        if has_representative_data:
            return FormatChoice(TFLITE_INT8, "smallest and fastest on phone/edge CPUs; calibrate on real samples")
        return FormatChoice(TFLITE_DYNAMIC, "about 4x smaller than float32 with no calibration data needed")
    if key in ("tf-serving", "other-language"):
        return FormatChoice(SAVEDMODEL, "a language-neutral graph + weights that TF Serving, C++, Java, Go "
                                        "and the TF.js converter read without Python code")
    if key == "python":
        return FormatChoice(KERAS, "the Keras 3 native file keeps architecture, weights and optimizer "
                                   "state to resume training")
    return FormatChoice(H5, "legacy HDF5 only for tools and code that cannot read .keras or SavedModel")


def _tiny_model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    outputs = keras.layers.Dense(1000, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m course_lib.formats --model MobileNetV2`: the notebook-03 table for one model.

    The sample input and the int8 calibration set are the shipped sample images, preprocessed the way
    the model's weights expect. Offline, the model has random weights (announced by course_lib.models):
    sizes and times are still real, output drift is then measured on a model that predicts nothing.
    """
    import argparse
    import platform

    from course_lib import data, models

    parser = argparse.ArgumentParser(prog="python -m course_lib.formats", description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="MobileNetV2",
                        help=f"'tiny' or a Keras Application: {', '.join(models.APPLICATIONS)}")
    parser.add_argument("--formats", nargs="+", default=list(ALL_FORMATS), help="subset of the formats")
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a deleted temp dir)")
    args = parser.parse_args(list(argv) if argv is not None else None)

    if args.model == "tiny":
        model, source, size = _tiny_model(), "random weights (course tiny model)", 224
        prepare: Callable[[np.ndarray], np.ndarray] = lambda images: images / 255.0  # noqa: E731
    else:
        spec = models.application_spec(args.model)
        loaded = models.load_pretrained(spec.name)
        model, source, size = loaded.model, f"{loaded.source}: {loaded.note}", spec.input_size
        prepare = lambda images: np.asarray(models.preprocess_input(spec.name, images))  # noqa: E731
    images = np.stack([data.load_image(path, (size, size)) for path in data.sample_images().values()])
    batch = prepare(images.copy()).astype(np.float32)
    rows = compare(model, batch, args.formats, args.workdir, representative_data=batch)
    print(f"model: {model.name}, {model.count_params():,} parameters; weights: {source}")
    print(f"input: {len(batch)} shipped sample images at {size}x{size}; int8 calibrated on the same images")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs")
    spread = float(np.ptp(np.asarray(model(batch, training=False))))
    if spread < 1e-6:
        print(f"note: the model's output is constant over these inputs (spread {spread:.1e}; random weights?): "
              "the max abs diff column cannot reveal drift here")
    print()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

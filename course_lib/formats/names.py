"""The model formats the course saves and loads: their names, what each is for, and how to tell them apart.

A format is named by its canonical string (`SAVEDMODEL`, `KERAS`, `H5`, `TFLITE`, `TFLITE_DYNAMIC`,
`TFLITE_INT8`); this module turns aliases and file suffixes into those names and reads which format a
file really holds from its first bytes. It imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import os
from pathlib import Path

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


FILE_SUFFIXES = {KERAS: (".keras",), H5: (".h5", ".hdf5"), **dict.fromkeys(TFLITE_FORMATS, (".tflite",))}


DEFAULT_FILE_NAMES = {
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
        if suffix in FILE_SUFFIXES[fmt]:
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


_CONTENT_NAMES = {
    SAVEDMODEL: "a SavedModel",
    KERAS: "a .keras (zip) model",
    H5: "an .h5 (HDF5) model",
    TFLITE: "a TFLite flatbuffer",
}


def describe_content(path: Path) -> str:
    """What a path holds, in words, for an error message: a format, or why it is none."""
    found = detect_format(path)
    if found is not None:
        return f"it holds {_CONTENT_NAMES[found]}"
    if path.is_dir():
        return "it is a directory without saved_model.pb"
    return "its content is not a model file (corrupt, truncated or another file type)"

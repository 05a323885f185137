"""Save one Keras model in each deployment format, load it back, and compare the formats.

Notebook 03 measures what the lecture only asserts: size on disk, save and load time, and whether
the outputs still match the Keras model. The notebooks call everything through this package
(`from course_lib import formats`); each job lives in its own module:

- `course_lib.formats.names`: the format names, aliases, suffixes, and which format a file holds.
- `course_lib.formats.save_load`: `save` and `load` (a `Predictor`: numpy in, float32 numpy out).
- `course_lib.formats.compare`: `compare` the formats on one model, `format_table`, `plot_sizes`.
- `course_lib.formats.advice`: `choose_format` for a deployment target.
- `course_lib.formats.cli`: `python -m course_lib.formats`.
"""

from course_lib.formats.advice import TARGETS, FormatChoice, choose_format
from course_lib.formats.compare import FormatResult, compare, format_table, plot_sizes
from course_lib.formats.names import (
    ALL_FORMATS,
    DESCRIPTIONS,
    H5,
    KERAS,
    SAVEDMODEL,
    TFLITE,
    TFLITE_DYNAMIC,
    TFLITE_FORMATS,
    TFLITE_INT8,
    detect_format,
    format_from_path,
    normalize_format,
    size_on_disk,
)
from course_lib.formats.save_load import Predictor, SavedArtifact, load, save
from course_lib.units import human_size

__all__ = [
    "ALL_FORMATS",
    "DESCRIPTIONS",
    "H5",
    "KERAS",
    "SAVEDMODEL",
    "TARGETS",
    "TFLITE",
    "TFLITE_DYNAMIC",
    "TFLITE_FORMATS",
    "TFLITE_INT8",
    "FormatChoice",
    "FormatResult",
    "Predictor",
    "SavedArtifact",
    "choose_format",
    "compare",
    "detect_format",
    "format_from_path",
    "format_table",
    "human_size",
    "load",
    "normalize_format",
    "plot_sizes",
    "save",
    "size_on_disk",
]

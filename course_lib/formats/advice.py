"""Which format to deploy to a target: the lecture's decision tree, made specific for Keras 3.

Advice, not I/O: it names a format (course_lib.formats.names) and says why, in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.errors import CourseError
from course_lib.formats.names import H5, KERAS, SAVEDMODEL, TFLITE_DYNAMIC, TFLITE_INT8


@dataclass(frozen=True)
class FormatChoice:
    """The answer of `choose_format`: a format from ALL_FORMATS and the reason, in one sentence."""

    format: str
    reason: str


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
    "mobile",
    "edge",
    "microcontroller",
    "accelerator",
    "tf-serving",
    "other-language",
    "python",
    "legacy",
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
        return FormatChoice(
            SAVEDMODEL,
            "a language-neutral graph + weights that TF Serving, C++, Java, Go "
            "and the TF.js converter read without Python code",
        )
    if key == "python":
        return FormatChoice(
            KERAS, "the Keras 3 native file keeps architecture, weights and optimizer state to resume training"
        )
    return FormatChoice(H5, "legacy HDF5 only for tools and code that cannot read .keras or SavedModel")

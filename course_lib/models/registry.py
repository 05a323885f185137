"""The pretrained models the course knows: where Keras keeps their weights, their TF Hub handles.

Data only (and a name lookup): nothing here downloads or loads. course_lib.models.cache says where
each one lives on disk; course_lib.models.loading turns it into a model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from course_lib.errors import CourseError

_KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class ApplicationSpec:
    """Where Keras keeps a model's ImageNet classifier weights (values from keras/src/applications)."""

    name: str
    weights_file: str
    url: str
    file_hash: str | None  # md5 as Keras checks it; None where Keras itself checks none
    input_size: int
    preprocess_module: str  # keras.applications.<module>.preprocess_input matches these weights


@dataclass(frozen=True)
class HubSpec:
    """A TF Hub handle the course uses, and the Keras architecture that stands in for it offline."""

    name: str
    handle: str
    fallback_application: str
    fallback_classes: int


APPLICATIONS: dict[str, ApplicationSpec] = {
    spec.name: spec
    for spec in (
        ApplicationSpec(
            "ResNet50",
            "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
            _KERAS_BASE + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
            "2cb95161c43110f7111970584f804107",
            224,
            "resnet50",
        ),
        ApplicationSpec(
            "MobileNetV2",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
            _KERAS_BASE + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
            None,
            224,
            "mobilenet_v2",
        ),
        ApplicationSpec(
            "MobileNetV3Small",
            "weights_mobilenet_v3_small_224_1.0_float.h5",
            _KERAS_BASE + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float.h5",
            "8768d4c2e7dee89b9d02b2d03d65d862",
            224,
            "mobilenet_v3",
        ),
        ApplicationSpec(
            "EfficientNetB0",
            "efficientnetb0.h5",
            "https://storage.googleapis.com/keras-applications/efficientnetb0.h5",
            "902e53a9f72be733fc0bcb005b3ebbac",
            224,
            "efficientnet",
        ),
        ApplicationSpec(
            "InceptionV3",
            "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
            _KERAS_BASE + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
            "9a0d58056eeedaa3f26cb7ebd46da564",
            299,
            "inception_v3",
        ),
        ApplicationSpec(
            "VGG16",
            "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
            _KERAS_BASE + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
            "64373286793e3c8b2b4e3219cbf3544b",
            224,
            "vgg16",
        ),
    )
}


HUB_MODELS: dict[str, HubSpec] = {
    "mobilenet_v2_100_224/classification": HubSpec(
        "mobilenet_v2_100_224/classification",
        "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/classification/5",
        "MobileNetV2",
        1001,  # Hub classifiers output 1001 logits: index 0 is 'background'
    ),
}


# What `python -m course_lib prefetch` fetches by default (VGG16 alone is 528 MiB: ask for it by name).
DEFAULT_PREFETCH: tuple[str, ...] = ("ResNet50", "MobileNetV2", "mobilenet_v2_100_224/classification")


def application_spec(name: str) -> ApplicationSpec:
    """The spec of a known Keras Application, by case-insensitive name; unknown names list the known ones."""
    for known, spec in APPLICATIONS.items():
        if known.lower() == str(name).strip().lower():
            return spec
    raise CourseError(
        f"unknown pretrained model {name!r}; known Keras Applications: {', '.join(APPLICATIONS)}; "
        f"known TF Hub models: {', '.join(HUB_MODELS)} (or pass a TF Hub URL or a local path)"
    )


def preprocess_input(name: str, images: Any) -> Any:
    """Apply the preprocessing the application's ImageNet weights expect (images in 0..255, NHWC).

    Each family differs (ResNet50: BGR minus mean; MobileNetV2: scale to -1..1; EfficientNet: inside
    the model), and the wrong one silently ruins accuracy, so look it up by model name.
    """

    module = importlib.import_module(f"keras.applications.{application_spec(name).preprocess_module}")
    return module.preprocess_input(images)

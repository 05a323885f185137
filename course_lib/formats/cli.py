"""`python -m course_lib.formats --model MobileNetV2`: notebook 03's comparison table for one model."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from course_lib import data, models
from course_lib.formats.compare import compare, format_table
from course_lib.formats.names import ALL_FORMATS


def _tiny_imagenet_cnn() -> Any:
    """A small random-weight CNN with ImageNet's shapes (224x224x3 in, 1000 classes out): saves in seconds."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    outputs = keras.layers.Dense(1000, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny_imagenet_cnn")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m course_lib.formats --model MobileNetV2`: the notebook-03 table for one model.

    The sample input and the int8 calibration set are the shipped sample images, preprocessed the way
    the model's weights expect. Offline, the model has random weights (announced by course_lib.models):
    sizes and times are still real, output drift is then measured on a model that predicts nothing.
    """
    import argparse
    import platform

    parser = argparse.ArgumentParser(
        prog="python -m course_lib.formats",
        description=main.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default="MobileNetV2",
        help=f"'tiny-imagenet-cnn' or a Keras Application: {', '.join(models.APPLICATIONS)}",
    )
    parser.add_argument("--formats", nargs="+", default=list(ALL_FORMATS), help="subset of the formats")
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a deleted temp dir)")
    args = parser.parse_args(list(argv) if argv is not None else None)

    if args.model == "tiny-imagenet-cnn":
        model, source, size = _tiny_imagenet_cnn(), "random weights (course tiny-imagenet-cnn)", 224
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
        print(
            f"note: the model's output is constant over these inputs (spread {spread:.1e}; random weights?): "
            "the max abs diff column cannot reveal drift here"
        )
    print()
    print(format_table(rows))
    return 0

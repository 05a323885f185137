"""Tiny models with known weights, exported the way the serving tests need them.

Weights are fixed, so a test computes the expected answer with numpy from the same weights
instead of hard-coding numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from course_lib.serving.export import export_model

CLASS_NAMES = ["cat", "dog", "bird"]


def classifier_weights(scale: float) -> tuple[np.ndarray, np.ndarray]:
    kernel = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5.5) / 10 * scale
    bias = np.array([0.1, -0.2, 0.05], np.float32) * scale
    return kernel, bias


def expected_probabilities(x: np.ndarray, scale: float) -> np.ndarray:
    kernel, bias = classifier_weights(scale)
    logits = np.asarray(x, np.float32) @ kernel + bias
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def build_classifier(scale: float = 1.0):
    """4 features -> 3-class softmax named `probs`, input named `x`."""
    import keras

    inputs = keras.Input((4,), name="x")
    layer = keras.layers.Dense(3, activation="softmax", name="probs")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights(list(classifier_weights(scale)))
    return model


def export_classifier(base: Path, version: int, scale: float | None = None) -> Path:
    return export_model(
        build_classifier(scale if scale is not None else float(version)), base, version, class_names=CLASS_NAMES
    )


def regressor_weights() -> tuple[np.ndarray, np.ndarray]:
    return np.array([[0.5], [-1.0], [2.0]], np.float32), np.array([0.25], np.float32)


def build_regressor():
    """3 features (`features`) -> one number (`price`), a Sequential model."""
    import keras

    model = keras.Sequential([keras.Input((3,), name="features"), keras.layers.Dense(1, name="price")])
    model.layers[-1].set_weights(list(regressor_weights()))
    return model


class _MultiModel(tf.Module):
    """Three named inputs (float, int, string) and five outputs, one of them `*_bytes`."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2], tf.float32, name="a"),
            tf.TensorSpec([None, 3], tf.int32, name="b"),
            tf.TensorSpec([None], tf.string, name="text"),
        ]
    )
    def serve(self, a, b, text):
        return {
            "total": tf.reduce_sum(a, axis=1) + tf.cast(tf.reduce_sum(b, axis=1), tf.float32),
            "doubled": a * 2.0,
            "length": tf.strings.length(text),
            "echo_bytes": text,
            "greeting": tf.strings.join(["hi ", text]),
        }

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a")])
    def halve(self, a):
        return {"half": a / 2.0}


def export_multi(base: Path, version: int = 1) -> Path:
    """A plain tf.Module SavedModel (not Keras): the server serves any SavedModel."""
    module = _MultiModel()
    target = Path(base) / str(version)
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve, "halve": module.halve})
    return target


def write_broken_version(base: Path, version: int) -> Path:
    """A version folder whose saved_model.pb is garbage: loading it must fail, not crash the server."""
    target = Path(base) / str(version)
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"this is not a protobuf \x00\xff\x13")
    (target / "variables").mkdir()
    return target


def copy_version_atomically(source: Path, base: Path, version: int) -> Path:
    """Copy an exported version in under a temporary name, then rename: what a deploy script should do."""
    staging = Path(base) / f".staging-{version}"
    shutil.copytree(source, staging)
    target = Path(base) / str(version)
    staging.rename(target)
    return target


def serve_classifier(root: Path, *flags: str):
    """The course server on free ports, serving version 1 of the classifier from `root`, with extra flags."""
    from course_lib.serving import serve

    export_classifier(root / "clf", 1)
    return serve(
        model_name="clf",
        model_base_path=root / "clf",
        use_real_server=False,
        log_path=root / "server.log",
        extra_flags=list(flags),
        timeout=180,
    )


def write_models_config(root: Path, **bases: Path) -> Path:
    """A models.config serving each `name=base_path` with its latest version."""
    entries = "\n".join(
        f"  config {{ name: '{name}' base_path: '{base}' model_platform: 'tensorflow' }}"
        for name, base in bases.items()
    )
    config = Path(root) / "models.config"
    config.write_text(f"model_config_list {{\n{entries}\n}}\n")
    return config


def serve_three_models(root: Path, *flags: str):
    """`clf` (float [-1,4], classify), `reg` (float [-1,3], regress) and `multi` (float, int32, string
    inputs; two signatures), version 1 each, on free ports: every dtype family and method in one server."""
    from course_lib.serving import serve

    root = Path(root)
    export_classifier(root / "clf", 1)
    export_model(build_regressor(), root / "reg", 1)
    export_multi(root / "multi", 1)
    config = write_models_config(root, clf=root / "clf", reg=root / "reg", multi=root / "multi")
    return serve(
        model_config_file=config,
        use_real_server=False,
        log_path=root / "server.log",
        extra_flags=list(flags),
        timeout=180,
    )


class _MixedModel(tf.Module):
    """FP32, INT64 and BYTES inputs side by side (the Open Inference Protocol test's second model)."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="weights"),
            tf.TensorSpec([None, 3], tf.int64, name="counts"),
            tf.TensorSpec([None], tf.string, name="tag"),
        ]
    )
    def serve(self, weights, counts, tag):
        return {
            "weighted": tf.reduce_sum(weights * tf.cast(counts, tf.float32), axis=1),
            "total": tf.reduce_sum(counts, axis=1),
            "tagged": tf.strings.join([tag, "!"]),
        }


def mixed_expected(weights: np.ndarray, counts: np.ndarray, tag: list[str]) -> dict[str, np.ndarray]:
    """What the mixed model answers, computed with numpy."""
    return {
        "weighted": (np.asarray(weights, np.float32) * np.asarray(counts, np.float32)).sum(axis=1),
        "total": np.asarray(counts, np.int64).sum(axis=1),
        "tagged": np.array([t + "!" for t in tag], dtype=object),
    }


def export_mixed(base: Path, version: int = 1) -> Path:
    module = _MixedModel()
    target = Path(base) / str(version)
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
    return target

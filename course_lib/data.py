"""The course's shipped data: sample images and ImageNet class names, usable offline.

Notebooks never open `data/` by a relative path (nbgrader moves them around); they call these
functions, which find the folder through `course_lib.paths.data_dir()`. Importing this module does
not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from course_lib.errors import CourseError
from course_lib.paths import data_dir

NUM_IMAGENET_CLASSES = 1000
CLASS_INDEX_FILENAME = "imagenet_class_index.json"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class Prediction(NamedTuple):
    """One decoded class: a plain tuple (class_id, wnid, name, score) with names for each field."""

    class_id: int
    wnid: str
    name: str
    score: float


def sample_images() -> dict[str, Path]:
    """The shipped sample images by short name (e.g. 'cat' -> .../data/cat.jpg), sorted by name."""
    folder = data_dir()
    if not folder.is_dir():
        raise CourseError(f"the course data folder {folder} does not exist: reinstall course_lib from the repo")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    return {p.stem: p for p in images}


def _resolve_image(name_or_path: str | os.PathLike[str]) -> Path:
    """A sample name or a path to an image file; errors list the sample names."""
    known = sample_images()
    if isinstance(name_or_path, str) and name_or_path in known:
        return known[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.exists():
        raise CourseError(f"{path} is a directory, not an image file: pass one image file")
    raise CourseError(
        f"no sample image called {str(name_or_path)!r} and no file at that path; "
        f"known sample images: {', '.join(known)}"
    )


def load_image(name_or_path: str | os.PathLike[str], size: tuple[int, int] | None = (224, 224)) -> np.ndarray:
    """An RGB image as a float32 (height, width, 3) array with values in 0..255.

    `size` is (height, width), like Keras' `target_size`; None keeps the file's size. Resizing is
    bilinear (Keras' `load_img` defaults to nearest, which aliases). Values stay in 0..255 because each
    model family has its own `preprocess_input`: apply it yourself.
    """
    path = _resolve_image(name_or_path)
    if size is not None and (len(size) != 2 or any(int(s) != s or s < 1 for s in size)):
        raise CourseError(f"size must be (height, width) in positive pixels, e.g. (224, 224); got {size!r}")
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise CourseError(f"{path} is not an image Pillow can read ({error}): pass a JPEG or PNG file") from error
    if size is not None:
        height, width = int(size[0]), int(size[1])
        rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.float32)


def class_index_path() -> Path:
    """The shipped Keras-format class index file ({"0": ["n01440764", "tench"], ...})."""
    return data_dir() / CLASS_INDEX_FILENAME


@lru_cache(maxsize=1)
def _class_index() -> tuple[tuple[str, str], ...]:
    path = class_index_path()
    if not path.is_file():
        raise CourseError(f"{path} is missing: rebuild it with data/build_data.py (see data/README.md)")
    raw = json.loads(path.read_text())
    return tuple((raw[str(i)][0], raw[str(i)][1]) for i in range(NUM_IMAGENET_CLASSES))


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-id order, spelled as Keras spells them."""
    return [name for _wnid, name in _class_index()]


def decode_top_k(probabilities: np.ndarray, k: int = 5) -> list[list[Prediction]]:
    """The k best classes of each row of an (N, 1000) array, best first, without any download.

    A single (1000,) vector counts as a batch of one. Scores are returned as given (probabilities or
    logits). Unlike Keras' `decode_predictions`, the result names the class id too.
    """
    scores = np.asarray(probabilities)
    if scores.ndim == 1:
        scores = scores[np.newaxis, :]
    if scores.ndim != 2 or scores.shape[1] != NUM_IMAGENET_CLASSES:
        hint = ""
        if scores.ndim == 2 and scores.shape[1] == NUM_IMAGENET_CLASSES + 1:
            hint = " TF Hub classifiers add a 'background' class at index 0: pass probabilities[:, 1:]."
        raise CourseError(
            f"expected ImageNet scores of shape (N, {NUM_IMAGENET_CLASSES}), got {np.shape(probabilities)}.{hint}"
        )
    if not np.issubdtype(scores.dtype, np.number):
        raise CourseError(f"expected numeric scores, got dtype {scores.dtype}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= NUM_IMAGENET_CLASSES:
        raise CourseError(f"k must be an integer from 1 to {NUM_IMAGENET_CLASSES}, got {k!r}")
    if not np.all(np.isfinite(scores)):
        raise CourseError("scores contain NaN or infinity: check the model's output before decoding it")
    index = _class_index()
    decoded = []
    for row in scores:
        best = np.argsort(-row, kind="stable")[:k]
        decoded.append([Prediction(int(i), index[i][0], index[i][1], float(row[i])) for i in best])
    return decoded


def keras_home() -> Path:
    """Keras' cache root: KERAS_HOME if set, else ~/.keras (Keras reads it once, when it is imported)."""
    import sys

    if "keras" in sys.modules:  # then its own answer wins: Keras read KERAS_HOME when it was imported
        try:
            from keras.src.backend import config

            home = config.keras_home()
        except (ImportError, AttributeError):  # private module: fall through to Keras' documented rule
            home = None
        if home:
            return Path(home).expanduser()
    override = os.environ.get("KERAS_HOME")
    return Path(override).expanduser() if override else Path.home() / ".keras"


def install_keras_class_index(home: str | os.PathLike[str] | None = None) -> Path:
    """Copy the class index to `<KERAS_HOME>/models/`, where `decode_predictions` looks first.

    The shipped file is byte-identical to the one Keras would download (same md5), so Keras accepts it
    and never goes to the network. Returns the installed path.
    """
    target = Path(home).expanduser() if home is not None else keras_home()
    destination = target / "models" / CLASS_INDEX_FILENAME
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = class_index_path()
    if not destination.is_file() or destination.read_bytes() != source.read_bytes():
        shutil.copyfile(source, destination)
    return destination

"""course_lib.data: shipped images and ImageNet names, checked on the real files in data/."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from course_lib import data
from course_lib.errors import CourseError
from course_lib.paths import data_dir


def test_sample_images_are_the_shipped_jpegs_and_small():
    images = data.sample_images()
    assert set(images) >= {"cat", "coffee", "astronaut", "rocket"}
    for path in images.values():
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert max(image.size) <= 512
    total = sum(p.stat().st_size for p in data_dir().iterdir() if p.is_file())
    assert total < 1_000_000, f"data/ holds {total} bytes; keep it under 1 MB"


def test_every_shipped_file_is_described_in_the_readme():
    readme = (data_dir() / "README.md").read_text()
    for path in data_dir().iterdir():
        if path.suffix in (".jpg", ".json"):
            assert f"`{path.name}`" in readme, f"{path.name} has no source/licence entry in data/README.md"


def test_load_image_by_name_resizes_to_float32_hwc_in_0_255():
    image = data.load_image("cat")
    assert image.shape == (224, 224, 3)
    assert image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 255
    assert image.max() > 1, "values must stay in 0..255, not be scaled to 0..1"


def test_load_image_keeps_the_file_size_when_size_is_none_and_accepts_paths():
    path = data.sample_images()["cat"]
    with Image.open(path) as original:
        width, height = original.size
    image = data.load_image(path, size=None)
    assert image.shape == (height, width, 3)
    assert data.load_image(str(path), size=(100, 50)).shape == (100, 50, 3)


def test_load_image_unknown_name_lists_the_known_ones():
    with pytest.raises(CourseError) as error:
        data.load_image("dog")
    for name in data.sample_images():
        assert name in str(error.value)


def test_load_image_rejects_bad_size_directories_and_non_images(tmp_path):
    with pytest.raises(CourseError, match="height, width"):
        data.load_image("cat", size=(224,))  # pyright: ignore[reportArgumentType]  (deliberately wrong: one number)
    with pytest.raises(CourseError, match="height, width"):
        data.load_image("cat", size=(0, 224))
    with pytest.raises(CourseError, match="directory"):
        data.load_image(tmp_path)
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not a picture")
    with pytest.raises(CourseError, match="not an image"):
        data.load_image(text_file)


def test_imagenet_class_names_follow_the_class_index_file():
    names = data.imagenet_class_names()
    assert len(names) == 1000
    raw = json.loads(data.class_index_path().read_text())
    assert names == [raw[str(i)][1] for i in range(1000)]
    assert all(" " not in name for name in names), "Keras spells names with underscores"


def test_decode_top_k_orders_classes_by_score():
    scores = np.zeros((2, 1000), dtype=np.float32)
    scores[0, [281, 285, 282]] = [0.5, 0.3, 0.2]
    scores[1, 967] = 1.0
    decoded = data.decode_top_k(scores, k=3)
    names = data.imagenet_class_names()
    assert [p.class_id for p in decoded[0]] == [281, 285, 282]
    assert [p.name for p in decoded[0]] == [names[281], names[285], names[282]]
    assert decoded[0][0].score == pytest.approx(0.5)
    assert decoded[1][0].class_id == 967 and len(decoded[1]) == 3
    _class_id, wnid, name, score = decoded[1][0]
    assert wnid.startswith("n") and name == names[967] and score == pytest.approx(1.0)


def test_decode_top_k_treats_a_vector_as_a_batch_of_one():
    scores = np.arange(1000, dtype=np.float64)
    decoded = data.decode_top_k(scores, k=5)
    assert len(decoded) == 1
    assert [p.class_id for p in decoded[0]] == [999, 998, 997, 996, 995]


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2, 10), r"\(N, 1000\)"), ((2, 1001), "background"), ((2, 3, 1000), r"\(N, 1000\)")],
)
def test_decode_top_k_validates_the_shape(shape, message):
    with pytest.raises(CourseError, match=message):
        data.decode_top_k(np.zeros(shape))


def test_decode_top_k_validates_k_and_values():
    scores = np.zeros((1, 1000))
    for bad_k in (0, 1001, 2.5, True):
        with pytest.raises(CourseError, match="k must be"):
            data.decode_top_k(scores, k=bad_k)  # pyright: ignore[reportArgumentType]  (deliberately not a valid int)
    scores[0, 3] = np.nan
    with pytest.raises(CourseError, match="NaN"):
        data.decode_top_k(scores)


def test_keras_decode_predictions_works_offline_after_install(tmp_path):
    """Keras checks the md5 of a cached class index before using it: ours must be accepted offline."""
    keras_home = tmp_path / "keras-home"
    installed = data.install_keras_class_index(keras_home)
    assert installed == keras_home / "models" / "imagenet_class_index.json"
    assert installed.read_bytes() == data.class_index_path().read_bytes()
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import keras
        scores = np.zeros((1, 1000), dtype="float32")
        scores[0, [967, 504, 968]] = [0.7, 0.2, 0.1]
        decoded = keras.applications.resnet50.decode_predictions(scores, top=3)[0]
        print(json.dumps([[wnid, name] for wnid, name, _score in decoded]))
        """
    )
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    keras_names = json.loads(result.stdout.strip().splitlines()[-1])
    scores = np.zeros((1, 1000))
    scores[0, [967, 504, 968]] = [0.7, 0.2, 0.1]
    ours = [[p.wnid, p.name] for p in data.decode_top_k(scores, k=3)[0]]
    assert keras_names == ours

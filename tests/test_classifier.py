"""ImageClassifier on real SavedModels exported from small Keras models into temporary folders."""

import json

import keras
import numpy as np
import numpy.typing as npt
import pytest
import tensorflow as tf

from course_lib import data
from course_lib.classifier import (
    METADATA_FILE,
    ChannelOrderError,
    EmptyBatchError,
    ImageClassifier,
    InputDtypeError,
    InputShapeError,
    InputValueError,
    ModelLoadError,
    export_for_classifier,
    preprocess_images,
    preprocessing_mode,
    validate_images,
)
from course_lib.errors import CourseError

SIZE = 32


def tiny_cnn(classes: int, size: int | None = SIZE, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def pixels(shape, dtype: npt.DTypeLike = np.uint8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(dtype)


@pytest.fixture(scope="module")
def model():
    return tiny_cnn(classes=5)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "1"
    model.export(str(path), verbose=False)
    return path


@pytest.fixture(scope="module")
def classifier(exported):
    return ImageClassifier(exported, preprocessing="tf")


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def expected_scores(model, images, mode="tf"):
    return model(preprocess_images(images.astype(np.float32), mode), training=False).numpy()


# --- preprocessing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "keras_preprocess"),
    [
        ("caffe", keras.applications.resnet50.preprocess_input),
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
    ],
)
def test_preprocessing_matches_keras_preprocess_input(mode, keras_preprocess):
    images = pixels((2, 8, 8, 3), np.float32)
    ours = preprocess_images(images, mode).numpy()
    np.testing.assert_allclose(ours, keras_preprocess(images.copy()), rtol=1e-5, atol=1e-4)


def test_same_size_resize_leaves_pixels_unchanged_and_other_sizes_are_resized():
    images = pixels((1, 20, 30, 3), np.float32)
    np.testing.assert_allclose(preprocess_images(images, "none", (20, 30)).numpy(), images, atol=1e-3)
    assert preprocess_images(images, "none", (7, 9)).shape == (1, 7, 9, 3)


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("ResNet50", "caffe"),
        ("vgg16", "caffe"),
        ("mobilenet_v2", "tf"),
        ("InceptionV3", "tf"),
        ("DenseNet121", "torch"),
        ("EfficientNetB0", "none"),
        ("tf", "tf"),
    ],
)
def test_architecture_names_map_to_their_preprocessing(name, mode):
    assert preprocessing_mode(name) == mode


def test_unknown_preprocessing_lists_the_modes():
    with pytest.raises(CourseError, match="caffe"):
        preprocessing_mode("imagenet")


# --- predictions -------------------------------------------------------------------------------------------


def test_predict_matches_the_keras_model_for_uint8_and_float_input(classifier, model):
    images = pixels((3, SIZE, SIZE, 3))
    expected = expected_scores(model, images)
    np.testing.assert_allclose(classifier.predict(images), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(classifier.predict(images.astype(np.float32)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(classifier.predict(images.astype(np.float64)), expected, rtol=1e-5, atol=1e-6)


def test_images_of_another_size_are_resized_in_the_graph(classifier, model):
    images = pixels((2, 50, 41, 3))
    resized = tf.image.resize(images.astype(np.float32), (SIZE, SIZE), antialias=True).numpy()
    assert_close(classifier.predict(images), expected_scores(model, resized))


def test_predict_single_returns_the_row_of_a_batch_of_one(classifier):
    image = pixels((SIZE, SIZE, 3), seed=3)
    single = classifier.predict_single(image)
    assert single.shape == (5,)
    np.testing.assert_allclose(single, classifier.predict(image[np.newaxis])[0], rtol=1e-6)


def test_one_trace_serves_every_batch_size_and_image_size(exported):
    fresh = ImageClassifier(exported, preprocessing="tf")
    assert fresh.tracing_count == 1  # traced at start-up
    for batch, height, width in [(1, SIZE, SIZE), (4, SIZE, SIZE), (7, 40, 33), (2, 16, 16)]:
        assert fresh.predict(pixels((batch, height, width, 3))).shape == (batch, 5)
    assert fresh.tracing_count == 1


def test_batches_above_max_batch_size_run_in_chunks_with_the_same_result(exported, classifier):
    chunked = ImageClassifier(exported, preprocessing="tf", max_batch_size=2)
    images = pixels((5, SIZE, SIZE, 3), seed=5)
    np.testing.assert_allclose(chunked.predict(images), classifier.predict(images), rtol=1e-6)


def test_wrong_preprocessing_changes_the_scores(exported, classifier):
    """Why preprocessing is explicit: the wrong mode gives other numbers, not an error."""
    caffe = ImageClassifier(exported, preprocessing="caffe")
    images = pixels((2, SIZE, SIZE, 3), seed=6)
    assert not np.allclose(caffe.predict(images), classifier.predict(images), atol=1e-4)


# --- input validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "error", "advice"),
    [
        (pixels((1, 3, SIZE, SIZE)), ChannelOrderError, r"np\.transpose\(x, \(0, 2, 3, 1\)\)"),
        (pixels((3, SIZE, SIZE)), InputShapeError, r"np\.transpose\(image, \(1, 2, 0\)\)"),
        (pixels((SIZE, SIZE, 3)), InputShapeError, "predict_single"),
        (pixels((2, SIZE, SIZE, 4)), InputShapeError, r"x\[\.\.\., :3\]"),
        (pixels((2, SIZE, SIZE, 1)), InputShapeError, "np.repeat"),
        (pixels((2, 1, SIZE, SIZE, 3)), InputShapeError, "rank 4"),
        (np.zeros((0, SIZE, SIZE, 3), np.uint8), EmptyBatchError, "at least one image"),
        (np.zeros((2, 0, SIZE, 3), np.float32), EmptyBatchError, "at least one image"),
        (np.full((1, SIZE, SIZE, 3), np.nan, np.float32), InputValueError, "NaN"),
        (np.full((1, SIZE, SIZE, 3), np.inf, np.float32), InputValueError, "infinite"),
        (np.full((1, SIZE, SIZE, 3), -1.0, np.float32), InputValueError, "already preprocessed"),
        (np.full((1, SIZE, SIZE, 3), 300.0, np.float32), InputValueError, "0..255"),
        (pixels((1, SIZE, SIZE, 3), np.int64), InputDtypeError, "uint8"),
        (np.ones((1, SIZE, SIZE, 3), bool), InputDtypeError, "uint8"),
        (np.full((1, 2, 2, 3), "a"), InputDtypeError, "uint8"),
        ([np.zeros((4, 4, 3)), np.zeros((5, 5, 3))], InputShapeError, "different sizes"),
    ],
)
def test_bad_batches_raise_errors_that_say_what_to_do(classifier, images, error, advice):
    with pytest.raises(error, match=advice):
        classifier.predict(images)


@pytest.mark.parametrize(
    ("image", "advice"),
    [
        (pixels((1, SIZE, SIZE, 3)), r"predict\(images\)"),
        (pixels((SIZE, SIZE)), "grayscale"),
        (pixels((3, SIZE, SIZE)), r"np\.transpose\(x, \(1, 2, 0\)\)"),
    ],
)
def test_bad_single_images_raise_errors_that_say_what_to_do(classifier, image, advice):
    with pytest.raises(InputShapeError, match=advice):
        classifier.predict_single(image)


def test_validation_errors_are_value_errors_and_course_errors():
    with pytest.raises(ValueError):
        validate_images(np.zeros((1, 3, 8, 8), np.uint8))
    assert issubclass(ChannelOrderError, CourseError)


def test_validate_images_returns_float32_without_changing_values():
    images = pixels((2, 4, 4, 3))
    checked = validate_images(images)
    assert checked.dtype == np.float32
    np.testing.assert_array_equal(checked, images)


# --- top-k -------------------------------------------------------------------------------------------------


def test_top_k_uses_imagenet_names_for_1000_classes(tmp_path):
    model = tiny_cnn(classes=1000, seed=1)
    model.export(str(tmp_path / "m"), verbose=False)
    classifier = ImageClassifier(tmp_path / "m", preprocessing="resnet50")
    images = pixels((2, SIZE, SIZE, 3), seed=7)
    scores = classifier.predict(images)
    names = data.imagenet_class_names()
    top = classifier.top_k(images, k=5)
    assert len(top) == 2 and all(len(row) == 5 for row in top)
    for row, row_scores in zip(top, scores, strict=True):
        best = np.argsort(-row_scores, kind="stable")[:5]
        assert [p.class_id for p in row] == list(best)
        assert [p.name for p in row] == [names[i] for i in best]
        assert row[0].score == pytest.approx(float(row_scores.max()))


def test_top_k_uses_given_class_names_and_takes_one_image(exported):
    classifier = ImageClassifier(exported, preprocessing="tf", class_names=["a", "b", "c", "d", "e"])
    image = pixels((SIZE, SIZE, 3), seed=8)
    (row,) = classifier.top_k(image, k=2)
    scores = classifier.predict_single(image)
    assert [p.name for p in row] == ["abcde"[i] for i in np.argsort(-scores, kind="stable")[:2]]


@pytest.mark.parametrize("k", [0, 6, 2.5, True])
def test_top_k_rejects_k_outside_the_classes(classifier, k):
    with pytest.raises(CourseError, match="k must be"):
        classifier.top_k(pixels((1, SIZE, SIZE, 3)), k=k)


# --- loading -----------------------------------------------------------------------------------------------


def test_tf_saved_model_save_exports_load_too(model, tmp_path):
    tf.saved_model.save(model, str(tmp_path / "m"))
    images = pixels((2, SIZE, SIZE, 3), seed=9)
    scores = ImageClassifier(tmp_path / "m", preprocessing="tf").predict(images)
    np.testing.assert_allclose(scores, expected_scores(model, images), rtol=1e-5, atol=1e-6)


def test_loading_errors_say_how_to_export(tmp_path, model, exported):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ImageClassifier(tmp_path / "missing", preprocessing="tf")
    keras_file = tmp_path / "model.keras"
    model.save(keras_file)
    with pytest.raises(ModelLoadError, match=r"keras\.saving\.load_model"):
        ImageClassifier(keras_file, preprocessing="tf")
    (tmp_path / "versions" / "1").mkdir(parents=True)
    (tmp_path / "versions" / "2").mkdir()
    with pytest.raises(ModelLoadError, match="version folders"):
        ImageClassifier(tmp_path / "versions", preprocessing="tf")
    with pytest.raises(ModelLoadError, match="serving_default"):
        ImageClassifier(exported, preprocessing="tf", signature="predict")
    with pytest.raises(ModelLoadError, match="no output"):
        ImageClassifier(exported, preprocessing="tf", output_key="logits")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError, match="could not load"):
        ImageClassifier(tmp_path / "broken", preprocessing="tf")


def test_models_that_do_not_return_class_scores_are_refused(tmp_path):
    feature_map = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(2, 3)])
    feature_map.export(str(tmp_path / "m"), verbose=False)
    with pytest.raises(ModelLoadError, match=r"\(batch, classes\)"):
        ImageClassifier(tmp_path / "m", preprocessing="tf")


def test_constructor_rejects_missing_or_inconsistent_settings(exported):
    with pytest.raises(CourseError, match="preprocessing='caffe'"):
        ImageClassifier(exported)
    with pytest.raises(CourseError, match="built for"):
        ImageClassifier(exported, preprocessing="tf", input_size=(64, 64))
    with pytest.raises(CourseError, match="5 scores"):
        ImageClassifier(exported, preprocessing="tf", class_names=["one", "two"])
    with pytest.raises(CourseError, match="max_batch_size"):
        ImageClassifier(exported, preprocessing="tf", max_batch_size=0)


def test_models_of_any_input_size_resize_to_the_size_you_give(tmp_path):
    flexible = tiny_cnn(classes=3, size=None)
    flexible.export(str(tmp_path / "m"), verbose=False)
    classifier = ImageClassifier(tmp_path / "m", preprocessing="tf", input_size=(24, 24))
    assert classifier.input_size == (24, 24)
    images = pixels((2, 40, 40, 3))
    resized = tf.image.resize(images.astype(np.float32), (24, 24), antialias=True).numpy()
    assert_close(classifier.predict(images), expected_scores(flexible, resized))


# --- export_for_classifier ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_preprocessing(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("with-preprocessing") / "1"
    return export_for_classifier(model, path, preprocessing="mobilenet_v2", class_names=list("vwxyz"))


def test_exported_model_takes_raw_pixels_of_any_size(self_preprocessing, model):
    signature = tf.saved_model.load(str(self_preprocessing)).signatures["serving_default"]
    images = pixels((2, 45, 60, 3)).astype(np.float32)
    resized = tf.image.resize(images, (SIZE, SIZE), antialias=True).numpy()
    served = signature(images=tf.constant(images))["scores"].numpy()
    np.testing.assert_allclose(served, expected_scores(model, resized), rtol=1e-5, atol=1e-6)


def test_classifier_reads_the_exported_preprocessing(self_preprocessing, model):
    metadata = json.loads((self_preprocessing / METADATA_FILE).read_text())
    assert metadata["preprocessing"] == "tf" and metadata["input_size"] == [SIZE, SIZE]
    classifier = ImageClassifier(self_preprocessing)
    assert classifier.includes_preprocessing and classifier.preprocessing == "tf"
    images = pixels((3, SIZE, SIZE, 3), seed=11)
    assert_close(classifier.predict(images), expected_scores(model, images))
    assert classifier.top_k(images[0], k=1)[0][0].name in "vwxyz"


def test_preprocessing_twice_is_refused(self_preprocessing):
    with pytest.raises(CourseError, match="twice"):
        ImageClassifier(self_preprocessing, preprocessing="caffe")


def test_export_refuses_a_non_empty_folder_and_models_without_a_size(self_preprocessing, tmp_path):
    with pytest.raises(CourseError, match="not empty"):
        export_for_classifier(tiny_cnn(3), self_preprocessing, "tf")
    with pytest.raises(CourseError, match="input_size"):
        export_for_classifier(tiny_cnn(3, size=None), tmp_path / "m", "tf")
    with pytest.raises(CourseError, match="built for"):
        export_for_classifier(tiny_cnn(3), tmp_path / "m", "tf", input_size=(64, 64))


def test_export_of_a_model_of_any_size_resizes_to_the_given_size(tmp_path):
    flexible = tiny_cnn(classes=3, size=None)
    exported = export_for_classifier(flexible, tmp_path / "m", "caffe", input_size=(20, 24))
    classifier = ImageClassifier(exported)
    assert classifier.input_size == (20, 24) and classifier.preprocessing == "caffe"
    images = pixels((2, 50, 50, 3))
    resized = tf.image.resize(images.astype(np.float32), (20, 24), antialias=True).numpy()
    assert_close(classifier.predict(images), expected_scores(flexible, resized, mode="caffe"))


# --- a real architecture on the shipped images -------------------------------------------------------------


def test_mobilenet_v2_on_shipped_images_matches_keras(tmp_path):
    keras.utils.set_random_seed(0)
    # Keras documents weights=None (random initialisation); pyright infers `str` from the default "imagenet"
    mobilenet = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None)  # pyright: ignore[reportArgumentType]
    mobilenet.export(str(tmp_path / "m"), verbose=False)
    classifier = ImageClassifier(tmp_path / "m", preprocessing="mobilenet_v2")
    images = np.stack([data.load_image(name, size=(96, 96)) for name in data.sample_images()])
    keras_inputs = keras.applications.mobilenet_v2.preprocess_input(images.copy())
    expected = mobilenet(keras_inputs, training=False).numpy()
    np.testing.assert_allclose(classifier.predict(images), expected, rtol=1e-4, atol=1e-5)
    top = classifier.top_k(images.astype(np.uint8), k=5)
    assert len(top) == len(data.sample_images())
    assert all(p.name in data.imagenet_class_names() for row in top for p in row)

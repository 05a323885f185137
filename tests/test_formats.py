"""course_lib.formats: one tiny real model saved in every format, loaded back and compared."""

import re

import keras
import numpy as np
import pytest

from course_lib import formats
from course_lib.errors import CourseError
from course_lib.formats import cli as formats_cli

# Output parity of Keras (oneDNN or Eigen kernels) against TFLite (XNNPACK, int8): make test runs these
# again with oneDNN off, as on CPUs without AVX-512.
pytestmark = pytest.mark.cpu_sensitive


@pytest.fixture(scope="module")
def tiny_model():
    """Conv + two 64x64 dense layers: big enough (>= 1024 weights) for dynamic-range quantization to act."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def sample():
    return np.random.default_rng(0).random((8, 16, 16, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def compared(tiny_model, sample, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("compare")
    return formats.compare(tiny_model, sample, workdir=workdir), workdir


def test_compare_returns_one_row_per_format_in_order(compared):
    rows, _ = compared
    assert [row.format for row in rows] == list(formats.ALL_FORMATS)


def test_float_formats_round_trip_exactly_and_quantized_ones_within_bounds(compared):
    diffs = {row.format: row.max_abs_diff for row in compared[0]}
    for fmt in (formats.SAVEDMODEL, formats.KERAS, formats.H5, formats.TFLITE):
        assert diffs[fmt] < 1e-5, f"{fmt} drifted by {diffs[fmt]}"
    assert diffs[formats.TFLITE_DYNAMIC] < 0.02
    assert diffs[formats.TFLITE_INT8] < 0.1  # softmax outputs in 0..1, quantized in steps of 1/256


def test_sizes_are_measured_on_disk_and_quantization_shrinks_the_file(compared):
    rows, workdir = compared
    by_format = {row.format: row for row in rows}
    for row in rows:
        assert row.path.parent == workdir and row.path.exists()
        assert row.size_bytes == formats.size_on_disk(row.path) > 0
        assert row.save_seconds > 0 and row.load_seconds > 0
    saved_model = by_format[formats.SAVEDMODEL].path
    assert saved_model.is_dir() and (saved_model / "saved_model.pb").is_file()
    assert by_format[formats.SAVEDMODEL].size_bytes == sum(
        p.stat().st_size for p in saved_model.rglob("*") if p.is_file()
    )
    float_size = by_format[formats.TFLITE].size_bytes
    assert by_format[formats.TFLITE_DYNAMIC].size_bytes < float_size
    assert by_format[formats.TFLITE_INT8].size_bytes < float_size


def test_detect_format_reads_the_content_of_each_artifact(compared):
    for row in compared[0]:
        expected = formats.TFLITE if row.format in formats.TFLITE_FORMATS else row.format
        assert formats.detect_format(row.path) == expected


def test_load_infers_the_format_and_predicts_any_batch_size(compared, tiny_model, sample):
    for row in compared[0]:
        predictor = formats.load(row.path)
        assert predictor.format in (row.format, formats.TFLITE)
        for batch in (sample[:1], sample[:3]):
            out = predictor(batch)
            assert out.shape == (len(batch), 10) and out.dtype == np.float32
            np.testing.assert_allclose(out, np.asarray(tiny_model(batch)), atol=0.1)


def test_int8_model_really_takes_int8_and_the_predictor_dequantizes(compared):
    path = {row.format: row.path for row in compared[0]}[formats.TFLITE_INT8]
    predictor = formats.load(path, formats.TFLITE_INT8)
    interpreter = predictor.raw
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    probabilities = predictor(np.zeros((2, 16, 16, 3), dtype=np.float32))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=0.05)


def test_save_is_silent_on_stdout_and_stderr(tiny_model, sample, tmp_path, capfd):
    """nbgrader zeroes a test cell that writes to stderr; the converter prints a lot by itself."""
    artifact = formats.save(tiny_model, tmp_path / "m.tflite", formats.TFLITE_INT8, representative_data=sample)
    formats.save(tiny_model, tmp_path / "m.h5")
    formats.load(artifact.path)(sample[:1])
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert artifact.format == formats.TFLITE_INT8 and artifact.size_bytes == artifact.path.stat().st_size


def test_save_infers_the_format_from_the_suffix(tiny_model, tmp_path):
    assert formats.save(tiny_model, tmp_path / "m.keras").format == formats.KERAS
    assert formats.save(tiny_model, tmp_path / "exported").format == formats.SAVEDMODEL


def test_unknown_format_lists_the_known_ones(tiny_model, tmp_path):
    with pytest.raises(CourseError) as error:
        formats.save(tiny_model, tmp_path / "m.onnx", "onnx")
    for fmt in formats.ALL_FORMATS:
        assert fmt in str(error.value)
    with pytest.raises(CourseError, match="suffix"):
        formats.format_from_path(tmp_path / "m.onnx")


def test_format_names_are_forgiving_about_case_and_separators():
    assert formats.normalize_format("Saved_Model") == formats.SAVEDMODEL
    assert formats.normalize_format("TFLite_INT8") == formats.TFLITE_INT8
    assert formats.normalize_format("hdf5") == formats.H5


def test_save_rejects_a_suffix_that_contradicts_the_format(tiny_model, tmp_path):
    with pytest.raises(CourseError, match=r"\.keras"):
        formats.save(tiny_model, tmp_path / "m.h5", formats.KERAS)
    with pytest.raises(CourseError, match="directory"):
        formats.save(tiny_model, tmp_path / "m.h5", formats.SAVEDMODEL)


def test_int8_without_representative_data_explains_what_to_pass(tiny_model, tmp_path):
    with pytest.raises(CourseError, match="representative_data"):
        formats.save(tiny_model, tmp_path / "m.tflite", formats.TFLITE_INT8)
    assert not (tmp_path / "m.tflite").exists()


def test_loading_an_h5_file_as_savedmodel_names_both_formats(compared):
    h5_path = {row.format: row.path for row in compared[0]}[formats.H5]
    with pytest.raises(CourseError) as error:
        formats.load(h5_path, formats.SAVEDMODEL)
    message = str(error.value)
    assert "SavedModel" in message and "fmt='h5'" in message


def test_a_directory_that_is_not_a_savedmodel_is_refused(tmp_path):
    (tmp_path / "variables").mkdir()
    with pytest.raises(CourseError, match=re.escape("saved_model.pb")):
        formats.load(tmp_path, formats.SAVEDMODEL)
    with pytest.raises(CourseError, match="SavedModel directory"):
        formats.load(tmp_path)


def test_missing_path_names_the_expected_format(tmp_path):
    with pytest.raises(CourseError, match=r"no such file.*tflite-int8"):
        formats.load(tmp_path / "gone.tflite", formats.TFLITE_INT8)


@pytest.mark.parametrize(
    ("name", "content", "fmt", "message"),
    [
        ("broken.keras", b"PK\x03\x04 truncated zip", formats.KERAS, "could not load"),
        ("broken.h5", b"\x89HDF\r\n\x1a\n garbage", formats.H5, "could not load"),
        ("broken.tflite", b"\x00\x00\x00\x00TFL3 garbage", None, "could not load"),
        ("random.tflite", b"definitely not a model", formats.TFLITE, "not a model file"),
    ],
)
def test_corrupt_files_raise_course_errors(tmp_path, name, content, fmt, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CourseError, match=message):
        formats.load(path, fmt)


def test_tflite_predictor_explains_a_wrong_input_shape(compared):
    path = {row.format: row.path for row in compared[0]}[formats.TFLITE]
    with pytest.raises(CourseError, match="does not fit"):
        formats.load(path)(np.zeros((1, 3, 16, 16), dtype=np.float32))


def test_compare_explains_a_sample_of_the_wrong_shape(tiny_model):
    with pytest.raises(CourseError, match="sample_input"):
        formats.compare(tiny_model, np.zeros((1, 3, 16, 16), dtype=np.float32), formats=[formats.KERAS])


def test_format_table_lists_every_row_with_bytes(compared):
    rows, _ = compared
    table = formats.format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + len(rows)
    for row, line in zip(rows, lines[2:], strict=True):
        assert line.startswith(f"| {row.format} |") and f"{row.size_bytes:,}" in line


def test_plot_sizes_draws_one_bar_per_format(compared):
    rows, _ = compared
    ax = formats.plot_sizes(rows)
    assert len(ax.patches) == len(rows)
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == pytest.approx([row.size_bytes / 1024 for row in rows])


def test_human_size_uses_binary_units():
    assert formats.human_size(512) == "512 B"
    assert formats.human_size(1536) == "1.5 KiB"
    assert formats.human_size(3 * 1024**2) == "3.0 MiB"


@pytest.mark.parametrize(
    ("target", "kwargs", "expected"),
    [
        ("mobile", {}, formats.TFLITE_DYNAMIC),
        ("Android", {"has_representative_data": True}, formats.TFLITE_INT8),
        ("microcontroller", {}, formats.TFLITE_INT8),
        ("edge_tpu", {"has_representative_data": True}, formats.TFLITE_INT8),
        ("TF Serving", {}, formats.SAVEDMODEL),
        ("java", {}, formats.SAVEDMODEL),
        ("training", {}, formats.KERAS),
        ("checkpoint", {}, formats.KERAS),
        ("legacy", {}, formats.H5),
    ],
)
def test_choose_format_follows_the_decision_tree(target, kwargs, expected):
    choice = formats.choose_format(target, **kwargs)
    assert choice.format == expected and choice.reason


def test_choose_format_unknown_target_lists_the_known_ones():
    with pytest.raises(CourseError) as error:
        formats.choose_format("toaster")
    for target in formats.TARGETS:
        assert target in str(error.value)


def test_benchmark_command_prints_the_table_for_the_tiny_model(capsys, tmp_path):
    assert (
        formats_cli.main(
            ["--model", "tiny-imagenet-cnn", "--formats", "keras", "tflite-int8", "--workdir", str(tmp_path)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| keras |" in out and "| tflite-int8 |" in out
    assert "shipped sample images" in out
    assert (tmp_path / "model.keras").is_file() and (tmp_path / "model_int8.tflite").is_file()

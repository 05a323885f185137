"""course_lib.models: cache, download, local and offline-fallback loading, on real (small) models.

Downloads are exercised against a real HTTP server on 127.0.0.1; tests that must not reach the
internet set COURSE_OFFLINE=1 so they behave the same on a connected machine.
"""

import dataclasses
import functools
import hashlib
import http.server
import os
import shutil
import tarfile
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from servers import free_port

from course_lib import formats, models
from course_lib.errors import CourseError

RESNET50_PARAMETERS = 25_636_712  # the lecture's number, for the architecture Keras ships
RESNET50_FLOAT32_BYTES = 102_546_848


@pytest.fixture(autouse=True)
def course_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache of its own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(folder))
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    return folder


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(7)
    # Keras documents weights=None (random initialisation); pyright infers `str` from the default "imagenet"
    return keras.applications.MobileNetV2(weights=None)  # pyright: ignore[reportArgumentType]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, format, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base_url)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def closed_port_url():
    return f"http://127.0.0.1:{free_port()}/weights.h5"


def same_weights(first, second):
    return len(first.weights) == len(second.weights) and all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first.weights, second.weights, strict=True)
    )


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_offline_fallback_is_resnet50_with_real_shapes_and_a_loud_warning(offline, capsys):
    with pytest.warns(models.PretrainedFallbackWarning, match="NOT ImageNet-quality"):
        loaded = models.load_pretrained("ResNet50")
    assert loaded.source == "fallback"
    assert "RANDOM" in loaded.note
    out_lines = [line for line in capsys.readouterr().out.splitlines() if "WARNING" in line]
    assert len(out_lines) == 1 and "ResNet50" in out_lines[0] and "prefetch" in out_lines[0]
    model = loaded.model
    assert model.count_params() == RESNET50_PARAMETERS
    assert sum(np.asarray(w).nbytes for w in model.weights) == RESNET50_FLOAT32_BYTES
    assert model.output_shape == (None, 1000)


def test_offline_without_fallback_raises_and_says_how_to_fix(offline):
    with pytest.raises(CourseError, match="prefetch"):
        models.load_pretrained("MobileNetV2", fallback=False)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(CourseError) as error:
        models.load_pretrained("ResNet9000")
    for name in models.APPLICATIONS:
        assert name in str(error.value)


def test_cache_with_keras3_weights_file_is_used(mobilenet, offline):
    path = models.saved_weights_cache_path("MobileNetV2")
    assert path.name.endswith(".weights.h5")
    assert models.save_weights_to_cache(mobilenet, "MobileNetV2") == path
    loaded = models.load_pretrained("mobilenetv2")
    assert loaded.source == "cache" and loaded.path == path
    assert same_weights(loaded.model, mobilenet)


def test_cache_with_the_keras_download_file_name_is_used(mobilenet, offline):
    """Prefetch stores weights under Keras' own file name (legacy HDF5), as Keras' get_file would."""
    path = models.weights_cache_path("MobileNetV2")
    assert path.name == models.APPLICATIONS["MobileNetV2"].weights_file
    path.parent.mkdir(parents=True)
    formats.save(mobilenet, path, "h5")  # legacy HDF5: Keras reads its weights like a downloaded weights file
    loaded = models.load_pretrained("MobileNetV2")
    assert loaded.source == "cache" and loaded.path == path
    assert same_weights(loaded.model, mobilenet)


def test_a_corrupt_cache_file_says_delete_and_prefetch(offline):
    path = models.saved_weights_cache_path("MobileNetV2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not weights")
    with pytest.raises(CourseError, match="delete it"):
        models.load_pretrained("MobileNetV2")


def test_download_fills_the_cache_then_the_cache_is_used(mobilenet, file_server, monkeypatch, capsys):
    folder, base_url = file_server
    served = folder / "mobilenet_v2.h5"
    formats.save(mobilenet, served, "h5")
    spec = dataclasses.replace(
        models.APPLICATIONS["MobileNetV2"], url=f"{base_url}/mobilenet_v2.h5", file_hash=md5(served)
    )
    monkeypatch.setitem(models.APPLICATIONS, "MobileNetV2", spec)
    first = models.load_pretrained("MobileNetV2")
    assert first.source == "download"
    assert first.path == models.weights_cache_path("MobileNetV2") and md5(first.path) == spec.file_hash
    assert same_weights(first.model, mobilenet)
    second = models.load_pretrained("MobileNetV2")
    assert second.source == "cache"
    assert "WARNING" not in capsys.readouterr().out


def test_download_file_rejects_a_wrong_hash_and_leaves_no_file(file_server, tmp_path):
    folder, base_url = file_server
    (folder / "blob.bin").write_bytes(b"x" * 100_000)
    target = tmp_path / "dl" / "blob.bin"
    with pytest.raises(CourseError, match="md5"):
        models.download_file(f"{base_url}/blob.bin", target, file_hash="0" * 32, progress=False)
    assert not target.exists() and not list(target.parent.iterdir())
    good = hashlib.sha256(b"x" * 100_000).hexdigest()
    assert models.download_file(f"{base_url}/blob.bin", target, file_hash=good, progress=False) == target
    assert target.stat().st_size == 100_000


def test_download_file_fails_clearly_on_missing_files_and_refused_connections(file_server, tmp_path, closed_port_url):
    _folder, base_url = file_server
    with pytest.raises(CourseError, match="could not download"):
        models.download_file(f"{base_url}/absent.h5", tmp_path / "a.h5", progress=False)
    with pytest.raises(CourseError, match="could not download"):
        models.download_file(closed_port_url, tmp_path / "b.h5", progress=False)
    assert not list(tmp_path.glob("*.h5*"))


def test_network_probe(file_server, closed_port_url, monkeypatch):
    _folder, base_url = file_server
    assert models.network_reachable(base_url)
    assert not models.network_reachable(closed_port_url)
    assert not models.network_reachable("https://weights.invalid/file.h5")  # .invalid never resolves
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert not models.network_reachable(base_url)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    """A tiny Keras model saved as SavedModel, .keras, .h5 and .tflite."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])
    folder = tmp_path_factory.mktemp("local")
    paths = {
        fmt: formats.save(model, folder / name, fmt).path
        for fmt, name in [("savedmodel", "exported"), ("keras", "m.keras"), ("h5", "m.h5"), ("tflite", "m.tflite")]
    }
    return model, paths


@pytest.mark.parametrize("fmt", ["savedmodel", "keras", "h5", "tflite"])
def test_load_local_each_format_gives_the_same_outputs(saved_tiny, fmt):
    model, paths = saved_tiny
    loaded = models.load_local(paths[fmt])
    assert loaded.source == "local" and loaded.path == paths[fmt]
    x = np.random.default_rng(0).random((5, 6), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded.model(x)), np.asarray(model(x)), atol=1e-5)
    if fmt != "tflite":
        assert loaded.model.count_params() == model.count_params()


def test_load_pretrained_accepts_a_local_path(saved_tiny):
    _model, paths = saved_tiny
    assert models.load_pretrained(str(paths["keras"])).source == "local"


def test_load_local_refuses_missing_and_non_model_paths(tmp_path):
    with pytest.raises(CourseError, match="no model"):
        models.load_local(tmp_path / "missing.keras")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(CourseError, match="not a SavedModel"):
        models.load_local(other)


class _Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x):
        return 2.0 * x


@pytest.fixture(scope="module")
def hub_style_savedmodel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "doubler"
    tf.saved_model.save(_Doubler(), str(folder))
    return folder


def test_load_hub_from_a_local_directory(hub_style_savedmodel):
    loaded = models.load_hub(str(hub_style_savedmodel))
    assert loaded.source == "local"
    np.testing.assert_allclose(loaded.model(tf.constant([[1.0, 2.0, 3.0]])).numpy(), [[2.0, 4.0, 6.0]])


def test_load_hub_uses_the_course_hub_cache_without_network(hub_style_savedmodel, offline):
    handle = models.HUB_MODELS["mobilenet_v2_100_224/classification"].handle
    module_dir = models.hub_module_dir(handle)
    assert module_dir.parent == models.hub_cache_dir()
    shutil.copytree(hub_style_savedmodel, module_dir)
    loaded = models.load_hub("mobilenet_v2_100_224/classification")
    assert loaded.source == "cache" and loaded.path == module_dir
    np.testing.assert_allclose(loaded.model(tf.constant([[1.0, 0.0, 0.0]])).numpy(), [[2.0, 0.0, 0.0]])


def test_a_broken_hub_cache_entry_says_delete_and_prefetch(offline):
    module_dir = models.hub_module_dir(models.HUB_MODELS["mobilenet_v2_100_224/classification"].handle)
    module_dir.mkdir(parents=True)
    (module_dir / "saved_model.pb").write_bytes(b"truncated")
    with pytest.raises(CourseError, match="delete"):
        models.load_hub("mobilenet_v2_100_224/classification")


def test_load_hub_downloads_into_the_course_cache(hub_style_savedmodel, file_server, monkeypatch):
    """tensorflow_hub's real resolver fetches a compressed SavedModel from 127.0.0.1."""
    pytest.importorskip("tensorflow_hub", reason="tensorflow_hub 0.16 needs pkg_resources (setuptools<81)")
    monkeypatch.delenv("TFHUB_CACHE_DIR", raising=False)
    folder, base_url = file_server
    (folder / "doubler").mkdir()
    with tarfile.open(folder / "doubler" / "1", "w:gz") as archive:
        for item in hub_style_savedmodel.iterdir():
            archive.add(item, arcname=item.name)
    handle = f"{base_url}/doubler/1"
    loaded = models.load_hub(handle)
    assert loaded.source == "download"
    assert loaded.path is not None and loaded.path == models.hub_module_dir(handle)
    assert (loaded.path / "saved_model.pb").is_file()
    np.testing.assert_allclose(loaded.model(tf.constant([[0.5, 1.0, 1.5]])).numpy(), [[1.0, 2.0, 3.0]])
    assert models.load_hub(handle).source == "cache"
    assert "TFHUB_CACHE_DIR" not in os.environ


def test_load_hub_offline_falls_back_to_the_same_output_shape(offline):
    with pytest.warns(models.PretrainedFallbackWarning):
        loaded = models.load_pretrained("mobilenet_v2_100_224/classification")
    assert loaded.source == "fallback"
    assert loaded.model.output_shape == (None, 1001)  # Hub classifiers add a 'background' class


def test_load_hub_offline_unknown_handle_raises(offline):
    with pytest.raises(CourseError, match="not cached"):
        models.load_hub("https://tfhub.dev/someone/unknown/1")


def test_prefetch_list_shows_each_default_model_and_downloads_nothing(capsys, course_cache):
    assert models.prefetch_main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in models.DEFAULT_PREFETCH:
        assert name in out
    assert "cached=no" in out
    assert not (course_cache / "keras").exists()


def test_prefetch_offline_names_what_failed_and_exits_1(offline, capsys, tmp_path):
    keras_home = tmp_path / "keras-home"
    assert models.prefetch_main(["--only", "ResNet50", "--keras-home", str(keras_home)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "ResNet50" in out
    assert (keras_home / "models" / "imagenet_class_index.json").is_file()


def test_prefetch_with_everything_cached_exits_0(mobilenet, offline, capsys, tmp_path):
    cache = tmp_path / "other-cache"
    models_dir = cache / "keras" / "models"
    models_dir.mkdir(parents=True)
    mobilenet.save_weights(str(models_dir / "mobilenetv2_imagenet.weights.h5"))
    argv = ["--only", "MobileNetV2", "--cache-dir", str(cache), "--keras-home", str(tmp_path / "kh")]
    assert models.prefetch_main(argv) == 0
    assert "cached" in capsys.readouterr().out


def test_prefetch_downloads_with_a_progress_bar(mobilenet, file_server, monkeypatch, capsys, tmp_path):
    folder, base_url = file_server
    served = folder / "w.h5"
    formats.save(mobilenet, served, "h5")
    spec = dataclasses.replace(models.APPLICATIONS["MobileNetV2"], url=f"{base_url}/w.h5", file_hash=md5(served))
    monkeypatch.setitem(models.APPLICATIONS, "MobileNetV2", spec)
    assert models.prefetch_main(["--only", "MobileNetV2", "--keras-home", str(tmp_path / "kh")]) == 0
    captured = capsys.readouterr()
    assert "downloaded" in captured.out
    assert "100%" in captured.err  # tqdm's bar
    assert md5(models.weights_cache_path("MobileNetV2")) == spec.file_hash


def test_prefetch_usage_errors_exit_2(capsys):
    assert models.prefetch_main(["--only", "NoSuchNet"]) == 2
    assert "NoSuchNet" in capsys.readouterr().err
    assert models.prefetch_main(["--bogus-flag"]) == 2


def test_preprocess_input_follows_each_model_family():
    white = np.full((1, 2, 2, 3), 255.0, dtype=np.float32)
    assert np.asarray(models.preprocess_input("MobileNetV2", white.copy())).max() == pytest.approx(1.0)
    caffe_style = np.asarray(models.preprocess_input("resnet50", white.copy()))
    assert caffe_style[0, 0, 0, 0] == pytest.approx(255.0 - 103.939)  # BGR, minus the ImageNet mean
    with pytest.raises(CourseError, match="known Keras Applications"):
        models.preprocess_input("AlexNet", white)


def test_download_file_copies_file_urls_and_checks_their_hash(tmp_path):
    """A lab's shared folder is a file:// URL; pooch has no downloader for it, the course adds one."""
    source = tmp_path / "shared" / "w.bin"
    source.parent.mkdir()
    source.write_bytes(b"y" * 1000)
    target = tmp_path / "dl" / "w.bin"
    good = hashlib.md5(b"y" * 1000).hexdigest()
    assert models.download_file(source.as_uri(), target, file_hash=good, progress=False).read_bytes() == b"y" * 1000
    with pytest.raises(CourseError, match="md5"):
        models.download_file(source.as_uri(), tmp_path / "dl" / "bad.bin", file_hash="0" * 32, progress=False)
    assert sorted(p.name for p in target.parent.iterdir()) == ["w.bin"]

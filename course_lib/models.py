"""Load pretrained models (Keras Applications, TF Hub, local files) through one course cache.

Infrastructure rule the course teaches: production never downloads at request time. Weights are
prefetched into `course_lib.paths.cache_dir()` (`python -m course_lib prefetch`, e.g. while building a
lab image) and loaded from there. When neither the cache nor the network has them, `load_pretrained`
builds the same architecture with random weights so shapes, parameter counts and speed stay real, and
says so loudly: never a silent fake.

Cache layout (under `cache_dir()`):
  keras/models/<Keras' own file name>      weights as Keras downloads them (prefetch writes these);
                                           also what Keras uses if you start Python with
                                           KERAS_HOME=<cache_dir>/keras
  keras/models/<name>_imagenet.weights.h5  weights saved by Keras 3 (`save_weights_to_cache`), preferred
  tfhub/<sha1 of the handle>/              TF Hub models (TFHUB_CACHE_DIR points here while loading)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_lib import formats
from course_lib.errors import CourseError
from course_lib.paths import cache_dir

SOURCES = ("cache", "download", "local", "fallback")
_KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


class PretrainedFallbackWarning(UserWarning):
    """Pretrained weights were unavailable: the model has random weights (predictions are meaningless)."""


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


@dataclass
class LoadedModel:
    """A model and where it came from: source is 'cache', 'download', 'local' or 'fallback'.

    `note` says in one sentence what you got; read it before trusting predictions.
    """

    model: Any
    source: str
    name: str
    note: str
    path: Path | None = None


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
    import importlib

    module = importlib.import_module(f"keras.applications.{application_spec(name).preprocess_module}")
    return module.preprocess_input(images)


def keras_weights_dir() -> Path:
    """`<cache_dir>/keras/models`: Keras' own layout, so KERAS_HOME=<cache_dir>/keras also finds it."""
    return cache_dir() / "keras" / "models"


def hub_cache_dir() -> Path:
    """`<cache_dir>/tfhub`: where TF Hub models are unpacked (TFHUB_CACHE_DIR during loading)."""
    return cache_dir() / "tfhub"


def weights_cache_path(name: str) -> Path:
    """Where prefetch puts a Keras Application's ImageNet weights (Keras' file name, Keras' format)."""
    return keras_weights_dir() / application_spec(name).weights_file


def saved_weights_cache_path(name: str) -> Path:
    """Where Keras-3 weights for an application go (`save_weights_to_cache`); checked first."""
    return keras_weights_dir() / f"{application_spec(name).name.lower()}_imagenet.weights.h5"


def hub_module_dir(handle: str) -> Path:
    """Where TF Hub unpacks `handle`: the sha1 of the handle under the hub cache (tensorflow_hub's rule)."""
    return hub_cache_dir() / hashlib.sha1(handle.encode("utf8")).hexdigest()


def save_weights_to_cache(model: Any, name: str) -> Path:
    """Store `model`'s weights as the cached ImageNet weights of application `name` (e.g. in a lab image)."""
    path = saved_weights_cache_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path))
    return path


def network_reachable(url: str, timeout: float = 2.0) -> bool:
    """Can we open a TCP connection to the URL's host within `timeout` seconds (DNS lookup included)?

    COURSE_OFFLINE=1 answers False without trying (metered links, air-gapped labs).
    """
    if os.environ.get("COURSE_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        return False
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    answers: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                answers.append(True)
        except OSError:
            answers.append(False)

    # A thread bounds the whole probe: socket timeouts do not cover a DNS lookup that hangs.
    probe = threading.Thread(target=attempt, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(answers and answers[0])


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    destination: str | os.PathLike[str],
    file_hash: str | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `destination` with a progress bar, verify its md5/sha256, then move it in place.

    The file appears only when complete and verified (written as .part first), so an interrupted
    download never looks cached.
    """
    from tqdm.auto import tqdm

    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                      disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise CourseError(f"could not download {url}: {reason}; check the network or copy the file to {target}") \
            from error
    if file_hash:
        algorithm = "sha256" if len(file_hash) == 64 else "md5"
        actual = _file_digest(partial, algorithm)
        if actual != file_hash.lower():
            partial.unlink(missing_ok=True)
            raise CourseError(
                f"{url} downloaded but its {algorithm} is {actual}, expected {file_hash}: "
                "the file is truncated or not the expected one; nothing was cached, try again"
            )
    partial.replace(target)
    return target


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _build_application(spec_name: str, **kwargs: Any) -> Any:
    import keras

    return getattr(keras.applications, spec_name)(**kwargs)


def _announce_fallback(name: str, why: str, fix: str) -> None:
    message = (
        f"{name} pretrained weights unavailable ({why}): using {name} with RANDOM weights; shapes, "
        f"parameter counts and speed are real, predictions are NOT ImageNet-quality. Fix: {fix}"
    )
    print(f"WARNING: {message}", flush=True)
    warnings.warn(message, PretrainedFallbackWarning, stacklevel=3)


def load_pretrained(name: str, *, allow_download: bool = True, fallback: bool = True) -> LoadedModel:
    """A Keras Application with ImageNet weights from the course cache, else a download, else a fallback.

    `name` may also be a TF Hub name/URL (see `load_hub`) or a local model path (see `load_local`).
    With `fallback=False` an unavailable model raises CourseError instead of returning random weights.
    """
    if not isinstance(name, str) or not name.strip():
        raise CourseError(f"name must be a model name such as 'ResNet50', got {name!r}")
    if name in HUB_MODELS or "://" in name:
        return load_hub(name, allow_download=allow_download, fallback=fallback)
    if not any(known.lower() == name.strip().lower() for known in APPLICATIONS) and Path(name).exists():
        return load_local(name)
    spec = application_spec(name)
    for cached in (saved_weights_cache_path(spec.name), weights_cache_path(spec.name)):
        if cached.is_file():
            return LoadedModel(_with_weights(spec, cached), "cache", spec.name,
                               f"{spec.name} with ImageNet weights from the course cache", cached)
    why = "downloads disabled (allow_download=False)"
    if allow_download:
        if network_reachable(spec.url):
            try:
                path = download_file(spec.url, weights_cache_path(spec.name), spec.file_hash)
                return LoadedModel(_with_weights(spec, path), "download", spec.name,
                                   f"{spec.name} with ImageNet weights, downloaded into the course cache", path)
            except CourseError as error:
                why = str(error)
        else:
            why = f"offline: {urllib.parse.urlsplit(spec.url).hostname} is unreachable"
    fix = f"run `python -m course_lib prefetch --only {spec.name}` online, or copy {spec.weights_file} to " \
          f"{keras_weights_dir()}"
    if not fallback:
        raise CourseError(f"{spec.name} ImageNet weights are not cached and {why}; {fix}")
    _announce_fallback(spec.name, why, fix)
    return LoadedModel(_build_application(spec.name, weights=None), "fallback", spec.name,
                       f"{spec.name} with RANDOM weights (weights=None): {why}")


def _with_weights(spec: ApplicationSpec, path: Path) -> Any:
    """Build the architecture without weights, then load the cached file (Keras picks the reader by suffix)."""
    model = _build_application(spec.name, weights=None)
    try:
        model.load_weights(str(path))
    except Exception as error:
        raise CourseError(
            f"cached weights {path} do not load into {spec.name} ({_first_line(error)}): the file is "
            "corrupt or for another model; delete it and run `python -m course_lib prefetch`"
        ) from error
    return model


@contextlib.contextmanager
def _hub_cache_env() -> Iterator[Path]:
    """Point TFHUB_CACHE_DIR at the course cache while tensorflow_hub resolves a handle."""
    folder = hub_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("TFHUB_CACHE_DIR")
    os.environ["TFHUB_CACHE_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("TFHUB_CACHE_DIR", None)
        else:
            os.environ["TFHUB_CACHE_DIR"] = previous


def load_hub(handle_or_name: str, *, allow_download: bool = True, fallback: bool = True) -> LoadedModel:
    """A TF Hub model as a callable object, from a local dir, the course's hub cache, or a download.

    A TF2 Hub model is a SavedModel: local and cached copies load with `tf.saved_model.load` (what
    `hub.load` does for them), so only downloads need tensorflow_hub's resolver. On Keras 3
    `hub.KerasLayer` cannot join a Keras model: call the loaded object directly, or use tf_keras
    (TF_USE_LEGACY_KERAS=1). Offline, known handles fall back to the same architecture with random
    weights and the same output shape; unknown handles raise CourseError.
    """
    spec = HUB_MODELS.get(handle_or_name)
    handle = spec.handle if spec else handle_or_name
    label = spec.name if spec else handle
    if Path(handle).exists():
        return LoadedModel(_load_savedmodel_dir(Path(handle)), "local", label,
                           f"TF Hub model from local path {handle}", Path(handle))
    if "://" not in handle:
        raise CourseError(f"{handle!r} is neither a TF Hub URL, a known name ({', '.join(HUB_MODELS)}) nor a path")
    module_dir = hub_module_dir(handle)
    if _is_cached_module(module_dir):
        return LoadedModel(_load_savedmodel_dir(module_dir), "cache", label, f"{label} from the TF Hub cache",
                           module_dir)
    why = "downloads disabled (allow_download=False)"
    if allow_download:
        if network_reachable(handle):
            try:
                resolved = _hub_resolve(handle)
                return LoadedModel(_load_savedmodel_dir(resolved), "download", label,
                                   f"{label} downloaded into the TF Hub cache", resolved)
            except CourseError as error:
                why = str(error)
        else:
            why = f"offline: {urllib.parse.urlsplit(handle).hostname} is unreachable"
    fix = f"run `python -m course_lib prefetch` online (it fills {hub_cache_dir()})"
    if spec is None or not fallback:
        raise CourseError(f"TF Hub model {handle} is not cached and {why}; {fix}")
    _announce_fallback(label, why, fix)
    model = _build_application(spec.fallback_application, weights=None, classes=spec.fallback_classes,
                               classifier_activation=None)
    return LoadedModel(model, "fallback", label,
                       f"{spec.fallback_application}(weights=None, classes={spec.fallback_classes}) standing in "
                       f"for {handle}: RANDOM weights ({why})")


def _is_cached_module(module_dir: Path) -> bool:
    """tensorflow_hub's own test: the handle's folder exists and is not empty."""
    return module_dir.is_dir() and any(module_dir.iterdir())


def _hub_resolve(handle: str) -> Path:
    """Download and unpack `handle` into the course's hub cache with tensorflow_hub; return the folder."""
    try:
        import tensorflow_hub as hub
    except ImportError as error:
        raise CourseError(
            f"tensorflow_hub cannot be imported ({_first_line(error)}); tensorflow-hub 0.16 needs "
            "pkg_resources, which setuptools >= 81 no longer ships: pip install 'setuptools<81'"
        ) from error
    with _hub_cache_env():
        try:
            return Path(hub.resolve(handle))
        except Exception as error:
            raise CourseError(f"TF Hub could not fetch {handle}: {_first_line(error)}") from error


def _load_savedmodel_dir(path: Path) -> Any:
    import tensorflow as tf

    try:
        return tf.saved_model.load(str(path))
    except Exception as error:
        raise CourseError(
            f"{path} is not a loadable SavedModel ({_first_line(error)}); for a broken cache entry, delete "
            "the folder and run `python -m course_lib prefetch` again"
        ) from error


def load_local(path: str | os.PathLike[str]) -> LoadedModel:
    """A model from a local SavedModel directory, .keras or .h5 file (or a .tflite file, as a Predictor).

    SavedModels exported by Keras come back as a Keras model (a TFSMLayer inside), so `model(x)` and
    `count_params()` work; other SavedModels come back as the `tf.saved_model.load` object.
    """
    path = Path(path)
    if not path.exists():
        raise CourseError(f"no model at {path}: expected a SavedModel directory, a .keras, .h5 or .tflite file")
    found = formats.detect_format(path)
    if found is None:
        raise CourseError(f"{path} is not a SavedModel directory, .keras, .h5 or .tflite file (or it is corrupt)")
    if found in (formats.KERAS, formats.H5, formats.TFLITE):
        predictor = formats.load(path, found)
        model = predictor.raw if found != formats.TFLITE else predictor
        return LoadedModel(model, "local", path.name, f"{found} model from {path}", path)
    return LoadedModel(_load_savedmodel_as_keras(path), "local", path.name, f"SavedModel from {path}", path)


def _load_savedmodel_as_keras(path: Path) -> Any:
    import keras

    loaded = _load_savedmodel_dir(path)
    signature = loaded.signatures.get("serving_default")
    if signature is None or not hasattr(loaded, "serve"):
        return loaded
    input_specs = list(signature.structured_input_signature[1].values())
    if len(input_specs) != 1:
        return loaded
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
    return keras.Sequential([keras.Input(shape=tuple(input_specs[0].shape[1:]), dtype=input_specs[0].dtype.name),
                             layer], name=path.name)


def _prefetch_one(name: str, timeout: float) -> str:
    """Fetch one model into the cache; returns a one-line status. Raises CourseError on failure."""
    if name in HUB_MODELS:
        spec = HUB_MODELS[name]
        module_dir = hub_module_dir(spec.handle)
        if _is_cached_module(module_dir):
            return f"cached      {name} -> {module_dir}"
        if not network_reachable(spec.handle, timeout):
            raise CourseError(f"{name}: {urllib.parse.urlsplit(spec.handle).hostname} is unreachable")
        return f"downloaded  {name} -> {_hub_resolve(spec.handle)}"
    spec = application_spec(name)
    target = weights_cache_path(spec.name)
    if target.is_file() or saved_weights_cache_path(spec.name).is_file():
        return f"cached      {spec.name} -> {target.parent}"
    if not network_reachable(spec.url, timeout):
        raise CourseError(f"{spec.name}: {urllib.parse.urlsplit(spec.url).hostname} is unreachable")
    download_file(spec.url, target, spec.file_hash, timeout=max(timeout, 30.0))
    return f"downloaded  {spec.name} -> {target}"


def _cached_status(name: str) -> tuple[str, str]:
    if name in HUB_MODELS:
        folder = hub_module_dir(HUB_MODELS[name].handle)
        return ("yes" if _is_cached_module(folder) else "no"), str(folder)
    paths = (saved_weights_cache_path(name), weights_cache_path(name))
    present = next((p for p in paths if p.is_file()), None)
    return ("yes" if present else "no"), str(present or paths[1])


def prefetch_main(argv: Sequence[str] | None = None) -> int:
    """`python -m course_lib prefetch`: download the course's models into the cache. Returns an exit code.

    0: everything is cached; 1: something could not be fetched (each failure is named); 2: bad usage.
    """
    parser = argparse.ArgumentParser(
        prog="python -m course_lib prefetch",
        description="Download the pretrained models the course uses into the course cache "
        "(COURSE_CACHE_DIR), so notebooks load them offline. Also installs the ImageNet class index "
        "where Keras' decode_predictions looks.",
    )
    known = [*APPLICATIONS, *HUB_MODELS]
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"fetch only these (known: {', '.join(known)})")
    parser.add_argument("--all", action="store_true", help="fetch every known model (VGG16 alone is 528 MiB)")
    parser.add_argument("--list", action="store_true", help="show what is cached and where; download nothing")
    parser.add_argument("--cache-dir", type=Path, help="cache folder (default: COURSE_CACHE_DIR or ~/.cache/tf-course)")
    parser.add_argument("--keras-home", type=Path,
                        help="where to install imagenet_class_index.json (default: KERAS_HOME or ~/.keras)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait when probing the network")
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as stop:
        return int(stop.code or 0)
    names = known if args.all else (args.only or list(DEFAULT_PREFETCH))
    previous = os.environ.get("COURSE_CACHE_DIR")
    if args.cache_dir is not None:
        os.environ["COURSE_CACHE_DIR"] = str(args.cache_dir)
    try:
        return _run_prefetch(names, args.list, args.timeout, args.keras_home)
    finally:
        if args.cache_dir is not None:
            if previous is None:
                os.environ.pop("COURSE_CACHE_DIR", None)
            else:
                os.environ["COURSE_CACHE_DIR"] = previous


def _run_prefetch(names: Sequence[str], list_only: bool, timeout: float, keras_home: Path | None) -> int:
    from course_lib import data

    try:
        canonical = [name if name in HUB_MODELS else application_spec(name).name for name in names]
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"course cache: {cache_dir()}")
    if list_only:
        for name in canonical:
            cached, where = _cached_status(name)
            print(f"{name:40s} cached={cached:3s} {where}")
        return 0
    print(f"ImageNet class index -> {data.install_keras_class_index(keras_home)}")
    failures = []
    start = time.perf_counter()
    for name in canonical:
        try:
            print(_prefetch_one(name, timeout), flush=True)
        except CourseError as error:
            failures.append(name)
            print(f"FAILED      {error}", flush=True)
    print(f"done in {time.perf_counter() - start:.1f} s")
    if failures:
        print(f"could not fetch: {', '.join(failures)}. Run again with network access; notebooks fall back to "
              "random weights (announced) until then.")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(prefetch_main())

"""The course cache of pretrained weights and TF Hub models: where each lives, and how it gets there.

Layout (under `course_lib.paths.cache_dir()`):
  keras/models/<Keras' own file name>      weights as Keras downloads them (prefetch writes these);
                                           also what Keras uses if you start Python with
                                           KERAS_HOME=<cache_dir>/keras
  keras/models/<name>_imagenet.weights.h5  weights saved by Keras 3 (`save_weights_to_cache`), preferred
  tfhub/<sha1 of the handle>/              TF Hub models (TFHUB_CACHE_DIR points here while loading)

Downloads go through pooch (hash check, progress bar, atomic move into place) and TF Hub's resolver.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from course_lib.errors import CourseError, first_line
from course_lib.models.registry import application_spec
from course_lib.paths import cache_dir


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


def _copy_local_file(url: str, output_file: str, _pooch: Any) -> None:
    """pooch's downloader interface for file:// URLs (a lab's shared folder; pooch has no downloader for them)."""
    shutil.copyfile(urllib.request.url2pathname(urllib.parse.urlsplit(url).path), output_file)


def _downloader(url: str, progress: bool, timeout: float) -> Any:
    import pooch

    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file":
        return _copy_local_file
    if scheme in ("http", "https"):
        return pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    return pooch.downloaders.choose_downloader(url, progressbar=progress)  # ftp, sftp, doi


def download_file(
    url: str,
    destination: str | os.PathLike[str],
    file_hash: str | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `destination` with a progress bar, verify its md5/sha256, then move it in place.

    pooch does the work: it writes a temporary file beside the destination and moves it in only when
    complete and verified, so an interrupted or corrupt download never looks cached. The hash is
    Keras' md5 (32 hex digits) or a sha256 (64).
    """
    import pooch
    import requests

    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    known_hash = None
    algorithm = None
    if file_hash:
        algorithm = "sha256" if len(file_hash) == 64 else "md5"
        known_hash = f"{algorithm}:{file_hash.lower()}"
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # not "Downloading data from ..." on stderr: nbgrader zeroes cells that write there
    try:
        pooch.retrieve(
            url, known_hash, fname=target.name, path=target.parent, downloader=_downloader(url, progress, timeout)
        )
    except ValueError as error:
        if algorithm is None or "hash" not in str(error).lower():
            raise CourseError(f"could not download {url}: {error}") from error
        raise CourseError(
            f"{url} downloaded but its {algorithm} is not {file_hash}: the file is truncated or not the "
            "expected one; nothing was cached, try again"
        ) from error
    except (requests.RequestException, OSError) as error:
        raise CourseError(
            f"could not download {url}: {error}; check the network or copy the file to {target}"
        ) from error
    finally:
        logger.setLevel(level)
    return target


@contextlib.contextmanager
def hub_cache_env() -> Iterator[Path]:
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


def is_cached_module(module_dir: Path) -> bool:
    """tensorflow_hub's own test: the handle's folder exists and is not empty."""
    return module_dir.is_dir() and any(module_dir.iterdir())


def hub_resolve(handle: str) -> Path:
    """Download and unpack `handle` into the course's hub cache with tensorflow_hub; return the folder."""
    try:
        import tensorflow_hub as hub
    except ImportError as error:
        raise CourseError(
            f"tensorflow_hub cannot be imported ({first_line(error)}); tensorflow-hub 0.16 needs "
            "pkg_resources, which setuptools >= 81 no longer ships: pip install 'setuptools<81'"
        ) from error
    with hub_cache_env():
        try:
            return Path(hub.resolve(handle))
        except Exception as error:
            raise CourseError(f"TF Hub could not fetch {handle}: {first_line(error)}") from error

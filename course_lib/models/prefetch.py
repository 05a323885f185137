"""`python -m course_lib prefetch`: download the course's models into the cache, so notebooks load offline."""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from course_lib import data
from course_lib.errors import CourseError
from course_lib.models.cache import (
    download_file,
    hub_module_dir,
    hub_resolve,
    is_cached_module,
    network_reachable,
    saved_weights_cache_path,
    weights_cache_path,
)
from course_lib.models.registry import APPLICATIONS, DEFAULT_PREFETCH, HUB_MODELS, application_spec
from course_lib.paths import cache_dir


def _prefetch_one(name: str, timeout: float) -> str:
    """Fetch one model into the cache; returns a one-line status. Raises CourseError on failure."""
    if name in HUB_MODELS:
        spec = HUB_MODELS[name]
        module_dir = hub_module_dir(spec.handle)
        if is_cached_module(module_dir):
            return f"cached      {name} -> {module_dir}"
        if not network_reachable(spec.handle, timeout):
            raise CourseError(f"{name}: {urllib.parse.urlsplit(spec.handle).hostname} is unreachable")
        return f"downloaded  {name} -> {hub_resolve(spec.handle)}"
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
        return ("yes" if is_cached_module(folder) else "no"), str(folder)
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
    parser.add_argument(
        "--keras-home", type=Path, help="where to install imagenet_class_index.json (default: KERAS_HOME or ~/.keras)"
    )
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
        print(
            f"could not fetch: {', '.join(failures)}. Run again with network access; notebooks fall back to "
            "random weights (announced) until then."
        )
        return 1
    return 0

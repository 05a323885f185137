"""Which model versions are on disk, which the policy wants served, and loading/unloading them.

Works like TF Serving's file-system source and availability-preserving manager: numbered folders
under each base path are versions; a new one is loaded while the old one keeps answering, the old
one is unloaded only once a wanted version is available; a version that fails to load is logged,
reported by the status API, and retried only when its folder changes. Requests hold a reference
to the version they resolved, so unloading never breaks a request in flight.
"""

# Generated *_pb2 modules build their message classes from descriptors at import time, so pyright
# cannot see their attributes (PredictRequest, DT_FLOAT, ...): attribute checks are off in this file.
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from tensorflow_serving.config import model_server_config_pb2

from course_lib.serving.errors import ServingError, invalid_argument, not_found
from course_lib.serving.servable import ServableVersion, describe_load_error
from course_lib.serving.warmup import WarmupOptions, replay

log = logging.getLogger("course_lib.serving")

# ModelVersionStatus.State names, in TF Serving's order.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionRecord:
    """What the server knows about one version: its state, its load error, the loaded model."""

    version: int
    path: Path
    state: str = START
    error: ServingError | None = None
    model: ServableVersion | None = None
    folder_fingerprint: tuple | None = None


@dataclass(frozen=True)
class VersionStatus:
    """A snapshot of a VersionRecord for the status API."""

    version: int
    state: str
    error_code: str
    error_message: str


def version_folders(base_path: Path) -> dict[int, Path]:
    """Numbered sub-folders of a base path (`1`, `2`, `00000123`); anything else is ignored."""
    try:
        entries = list(os.scandir(base_path))
    except OSError:
        return {}
    found: dict[int, Path] = {}
    for entry in entries:
        if entry.name.isdigit() and entry.is_dir():
            found[int(entry.name)] = Path(entry.path)
    return found


def folder_fingerprint(path: Path) -> tuple:
    """Changes when a version folder's files change, so a failed load is retried after a fix."""
    parts = []
    for sub in ("", "saved_model.pb", "variables", "variables/variables.index"):
        try:
            stat = os.stat(path / sub)
            parts.append((sub, stat.st_mtime_ns, stat.st_size))
        except OSError:
            parts.append((sub, None, None))
    return tuple(parts)


def aspired_versions(policy: model_server_config_pb2.ModelVersionPolicy, on_disk: list[int]) -> set[int]:
    """The versions a model_version_policy wants served, out of those on disk."""
    choice = policy.WhichOneof("policy_choice")
    ordered = sorted(on_disk, reverse=True)
    if choice == "all":
        return set(ordered)
    if choice == "specific":
        return set(policy.specific.versions) & set(ordered)
    count = max(1, policy.latest.num_versions) if choice == "latest" else 1
    return set(ordered[:count])


def _servable_id(name: str, version: int) -> str:
    return f"{{name: {name} version: {version}}}"


class ModelRegistry:
    """All configured models and their versions; thread-safe, polled from one background thread."""

    def __init__(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        tags: tuple[str, ...] = ("serve",),
        loader: Callable[[str, int, Path], ServableVersion] | None = None,
        warmup: WarmupOptions | None = None,
    ):
        self._tags = tags
        self._warmup = warmup or WarmupOptions()
        self._loader = loader or (lambda name, version, path: self._load_and_warm(name, version, path))
        self._lock = threading.Lock()
        self._configs: dict[str, model_server_config_pb2.ModelConfig] = {}
        self._records: dict[str, dict[int, VersionRecord]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._warned: set[tuple] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.update_config(config)

    def _load_and_warm(self, name: str, version: int, path: Path) -> ServableVersion:
        """Load a version and warm it up before it becomes AVAILABLE: its warm-up records when it has them
        (a failing record fails the load, as in TF Serving), else one call on zeros."""
        model = ServableVersion(name, version, path, self._tags)
        if self._warmup.enabled and not replay(model, self._warmup):
            model.warm_up()
        return model

    # ----- configuration -------------------------------------------------------------------

    def update_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Adopt a (new) model list: added models load at the next poll, removed ones unload."""
        new_configs = {model.name: model for model in config.model_config_list.config}
        with self._lock:
            removed = set(self._configs) - set(new_configs)
            removed |= {
                name
                for name, model in new_configs.items()
                if name in self._configs and self._configs[name].base_path != model.base_path
            }
            self._configs = dict(new_configs)
            self._labels = {name: dict(model.version_labels) for name, model in new_configs.items()}
            removed_records = {name: self._records.pop(name, {}) for name in removed}
            for name in new_configs:
                self._records.setdefault(name, {})
        for name, records in removed_records.items():
            for record in records.values():
                if record.model is not None:
                    log.info(
                        "Model %s was removed from the config or moved: unloading version %s", name, record.version
                    )

    def model_names(self) -> list[str]:
        with self._lock:
            return list(self._configs)

    # ----- polling ---------------------------------------------------------------------------

    def poll_once(self) -> None:
        """Look at every base path once; load wanted versions, unload unwanted ones."""
        with self._lock:
            configs = list(self._configs.values())
        for config in configs:
            try:
                self._reconcile(config)
            except Exception:  # one model's trouble must never stop the others or the poller
                log.exception("Unexpected error while polling model %s", config.name)

    def start_polling(
        self,
        interval_seconds: float,
        config_interval_seconds: float = 0.0,
        reload_config: Callable[[], None] | None = None,
    ) -> None:
        """Poll in a daemon thread: version folders every `interval_seconds` (TF Serving: 0 means
        only once, at start), and `reload_config()` every `config_interval_seconds` when given."""
        polls = interval_seconds > 0
        reloads = reload_config is not None and config_interval_seconds > 0
        if not polls and not reloads:
            return
        tick = min(
            t
            for t in (interval_seconds if polls else None, config_interval_seconds if reloads else None)
            if t is not None
        )

        def run() -> None:
            next_poll = next_reload = time.monotonic()
            while not self._stop.wait(tick):
                now = time.monotonic()
                if reload_config is not None and reloads and now - next_reload >= config_interval_seconds - 1e-3:
                    next_reload = now
                    try:
                        reload_config()
                    except Exception:
                        log.exception("Re-reading the model config failed; keeping the previous config")
                if polls and now - next_poll >= interval_seconds - 1e-3:
                    next_poll = now
                    self.poll_once()

        self._thread = threading.Thread(target=run, name="model-version-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _warn_once(self, key: tuple, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _reconcile(self, config: model_server_config_pb2.ModelConfig) -> None:
        name = config.name
        base_path = Path(config.base_path)
        on_disk = version_folders(base_path)
        if not on_disk:
            self._warn_once(
                ("empty", name, str(base_path)),
                "File system storage path source: No versions of servable %s found under "
                "base path %s. Did you forget to name your leaf directory as an integer "
                "(e.g. %s/1/saved_model.pb)?",
                name,
                base_path,
                base_path,
            )
        ready = {}
        for version, path in on_disk.items():
            if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
                ready[version] = path
            else:
                self._warn_once(
                    ("incomplete", name, version), "Version folder %s has no saved_model.pb yet; waiting for it", path
                )
        wanted = aspired_versions(config.model_version_policy, list(ready))
        if config.model_version_policy.WhichOneof("policy_choice") == "specific":
            missing = set(config.model_version_policy.specific.versions) - set(ready)
            for version in sorted(missing):
                self._warn_once(
                    ("specific", name, version),
                    "Model %s: version %s is in the specific policy but not on disk under %s",
                    name,
                    version,
                    base_path,
                )
        for label, version in config.version_labels.items():
            if version not in wanted:
                self._warn_once(
                    ("label", name, label, version),
                    "Model %s: label %r points to version %s, which is not being served",
                    name,
                    label,
                    version,
                )

        for version in sorted(wanted, reverse=True):
            self._maybe_load(name, version, ready[version])

        with self._lock:
            records = self._records.get(name, {})
            any_wanted_available = any(r.state == AVAILABLE for v, r in records.items() if v in wanted)
            to_unload = [
                r
                for v, r in records.items()
                if v not in wanted and r.state == AVAILABLE and (any_wanted_available or not wanted)
            ]
            for record in to_unload:
                record.state = UNLOADING
        for record in to_unload:
            reason = "its folder was removed" if record.version not in on_disk else "the policy no longer wants it"
            log.info("Unloading servable version %s (%s)", _servable_id(name, record.version), reason)
            with self._lock:
                record.model = None
                record.state = END
                record.error = None
            log.info("Done unloading servable version %s", _servable_id(name, record.version))

    def _maybe_load(self, name: str, version: int, path: Path) -> None:
        fingerprint = folder_fingerprint(path)
        with self._lock:
            records = self._records.get(name)
            if records is None:  # model removed from the config meanwhile
                return
            record = records.get(version)
            if record is not None:
                if record.state in (AVAILABLE, LOADING, UNLOADING):
                    return
                if record.error is not None and record.folder_fingerprint == fingerprint:
                    return  # failed before and nothing changed: do not retry every poll
            record = VersionRecord(version=version, path=path, state=LOADING, folder_fingerprint=fingerprint)
            records[version] = record
        log.info("Approving load for servable version %s", _servable_id(name, version))
        started = time.perf_counter()
        try:
            model = self._loader(name, version, path)
        except Exception as exc:
            error = describe_load_error(exc)
            with self._lock:
                record.state, record.error = END, error
            log.error(
                "Loading servable version %s failed: %s. The server keeps serving the other "
                "versions; fix the folder and it is retried.",
                _servable_id(name, version),
                error,
            )
            return
        with self._lock:
            record.model, record.state, record.error = model, AVAILABLE, None
        log.info(
            "Successfully loaded servable version %s in %.2f s",
            _servable_id(name, version),
            time.perf_counter() - started,
        )

    # ----- lookups for requests -----------------------------------------------------------------

    def _version_for_label(self, name: str, label: str) -> int:
        """The version a label points at; the caller holds the lock."""
        labels = self._labels.get(name, {})
        if label not in labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> ServableVersion:
        """The loaded version a request asks for: latest available, a number, or a label."""
        if version is not None and label is not None:
            raise invalid_argument(
                f"Both model version ({version}) and model version label ({label}) cannot be supplied."
            )
        with self._lock:
            if label is not None:
                version = self._version_for_label(name, label)
            records = self._records.get(name, {})
            if version is None:
                available = {
                    r.version: r.model for r in records.values() if r.state == AVAILABLE and r.model is not None
                }
                if not available:
                    raise not_found(f"Servable not found for request: Latest({name})")
                return available[max(available)]
            record = records.get(version)
            if record is None or record.state != AVAILABLE or record.model is None:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return record.model

    def version_statuses(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        """Status of one or all versions of a model, newest first (GetModelStatus)."""
        with self._lock:
            if label is not None:
                version = self._version_for_label(name, label)
            records = self._records.get(name, {})
            if version is not None:
                record = records.get(version)
                if record is None:
                    raise not_found(f"Could not find version {version} of model {name}")
                chosen = [record]
            else:
                if not records:
                    raise not_found(f"Could not find any versions of model {name}")
                chosen = sorted(records.values(), key=lambda r: r.version, reverse=True)
            return [
                VersionStatus(
                    version=r.version,
                    state=r.state,
                    error_code=r.error.code.name if r.error else grpc.StatusCode.OK.name,
                    error_message=r.error.message if r.error else "",
                )
                for r in chosen
            ]

"""`serve(...)`: start a model server in the background and return only once it serves.

It launches `tensorflow_model_server` when that binary is on PATH, and otherwise the course's own
`python -m course_lib.serving`, with the same flags. Either way it polls the status endpoint until
every model has an AVAILABLE version; if the server dies or never gets there, the CourseError
carries the server's log tail, so a notebook never ends at a bare "connection refused".
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.errors import CourseError
from course_lib.serving.client import model_path, probe_server

REAL_BINARY = "tensorflow_model_server"
_RUNNING: weakref.WeakSet = weakref.WeakSet()


def find_model_server() -> str | None:
    """Path of `tensorflow_model_server` if it is installed, else None."""
    return shutil.which(REAL_BINARY)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def read_log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(eq=False)
class ServerHandle:
    """A running server: where to reach it, its log, and `stop()` (also a context manager)."""

    process: subprocess.Popen
    command: list[str]
    rest_url: str
    grpc_target: str | None
    log_path: Path
    implementation: str
    model_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server wrote (stdout and stderr)."""
        return read_log_tail(self.log_path, lines)

    def stop(self, timeout: float = 15.0) -> int:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`); returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exited ({self.process.returncode})"
        return (
            f"ServerHandle({self.implementation}, {state}, rest_url={self.rest_url!r}, "
            f"grpc_target={self.grpc_target!r}, log={str(self.log_path)!r})"
        )


@atexit.register
def _stop_all() -> None:
    for handle in list(_RUNNING):
        with contextlib.suppress(Exception):
            handle.stop(timeout=5)


def _model_names(model_name: str | None, model_config_file: str | os.PathLike | None) -> list[str]:
    if model_config_file is not None:
        from course_lib.serving.config import load_model_config_file

        return [m.name for m in load_model_config_file(model_config_file).model_config_list.config]
    return [model_name or "default"]


def serve(
    model_name: str | None = None,
    model_base_path: str | os.PathLike | None = None,
    *,
    model_config_file: str | os.PathLike | None = None,
    port: int | None = None,
    rest_api_port: int | None = None,
    host: str = "127.0.0.1",
    enable_batching: bool = False,
    batching_parameters_file: str | os.PathLike | None = None,
    file_system_poll_wait_seconds: float | None = None,
    extra_flags: Sequence[str] = (),
    use_real_server: bool | None = None,
    timeout: float = 120.0,
    log_path: str | os.PathLike | None = None,
) -> ServerHandle:
    """Start a model server, wait until every model has an AVAILABLE version, return its handle.

    Ports default to free ones (pass 8500/8501 for TF Serving's usual ports). `use_real_server`:
    None uses `tensorflow_model_server` when installed, True requires it, False uses the course's.
    """
    if model_config_file is None and model_base_path is None:
        raise CourseError("Give model_name and model_base_path, or model_config_file")
    base_path = Path(model_base_path).resolve() if model_base_path is not None else None
    if base_path is not None and not base_path.is_dir():
        raise CourseError(
            f"model_base_path {base_path} is not a folder: export a version into it first "
            "(export_model(model, base_path, version=1))"
        )
    real = find_model_server()
    if use_real_server and real is None:
        raise CourseError(f"{REAL_BINARY} is not on PATH: install it, or call serve(..., use_real_server=False)")
    use_real = real is not None if use_real_server is None else use_real_server
    names = _model_names(model_name, model_config_file)
    grpc_port = free_port(host) if port is None else port
    rest_port = free_port(host) if rest_api_port is None else rest_api_port
    if rest_port == 0:
        raise CourseError("serve() needs the REST port to check health: give rest_api_port > 0 (or None)")

    flags = [f"--port={grpc_port}", f"--rest_api_port={rest_port}"]
    if model_config_file is not None:
        flags.append(f"--model_config_file={Path(model_config_file).resolve()}")
    else:
        flags += [f"--model_name={names[0]}", f"--model_base_path={base_path}"]
    if enable_batching:
        flags.append("--enable_batching=true")
    if batching_parameters_file is not None:
        flags.append(f"--batching_parameters_file={Path(batching_parameters_file).resolve()}")
    if file_system_poll_wait_seconds is not None:
        value = file_system_poll_wait_seconds
        flags.append(f"--file_system_poll_wait_seconds={int(value) if use_real else value}")
    flags += list(extra_flags)
    if use_real:
        command = [real, *flags]  # the real server binds all interfaces; it has no --host flag
        implementation = REAL_BINARY
    else:
        command = [sys.executable, "-m", "course_lib.serving", f"--host={host}", *flags]
        implementation = "course_lib.serving"

    if log_path is None:
        handle_fd, log_name = tempfile.mkstemp(prefix="model-server-", suffix=".log")
        os.close(handle_fd)
        log_path = Path(log_name)
    log_path = Path(log_path)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # On a GPU the notebook's kernel and the server share the card: without growth, whichever
    # process starts TensorFlow first takes nearly all of its memory.
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    handle = ServerHandle(
        process=process,
        command=command,
        rest_url=f"http://{connect_host}:{rest_port}",
        grpc_target=f"{connect_host}:{grpc_port}" if grpc_port else None,
        log_path=log_path,
        implementation=implementation,
        model_names=names,
    )
    try:
        _wait_until_serving(handle, timeout)
    except BaseException:  # including KeyboardInterrupt: never leave an orphan server behind
        handle.stop(timeout=5)
        raise
    return handle


def _wait_until_serving(handle: ServerHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    pending = list(handle.model_names)
    last_seen = "nothing yet"
    while pending:
        code = handle.process.poll()
        if code is not None:
            raise CourseError(
                f"The model server ({handle.implementation}) exited with code {code} before serving.\n"
                f"Command: {' '.join(handle.command)}\nLast lines of its log ({handle.log_path}):\n"
                f"{handle.log_tail()}"
            )
        ready, _, seen = probe_server(handle.rest_url + model_path(pending[0]))
        if ready:
            pending.pop(0)
            continue
        last_seen = f"model {pending[0]!r}: {seen}"
        if time.monotonic() >= deadline:
            handle.stop(timeout=5)
            raise CourseError(
                f"The model server did not serve within {timeout:g} s (last seen: {last_seen}); it was stopped.\n"
                f"Command: {' '.join(handle.command)}\nLast lines of its log ({handle.log_path}):\n"
                f"{handle.log_tail()}"
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)

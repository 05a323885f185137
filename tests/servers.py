"""Servers that tests start: a free port, output to a log file, and a loud failure with the log's tail.

A server's output goes to a file, never to `stdout=PIPE`: a pipe that nobody reads fills at about
64 KiB and then blocks the server in the middle of a write, and the test hangs without a clue.
`wait_for_http` polls a URL until it answers; when the process exits first, or nothing answers in
time, the test fails with the exit code and the last lines of the log. A test that fails after its
servers came up gets their log tails in its report too (tests/conftest.py).

    with running_server([...], tmp_path / "lab.log", url=f"http://127.0.0.1:{port}/api") as lab:
        ...
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import requests

from course_lib.serving.launcher import free_port, read_log_tail

__all__ = ["LoggedProcess", "free_port", "recent_processes", "running_server", "start_logged", "wait_for_http"]

_LIVE: list[LoggedProcess] = []  # started and still running
_STOPPED: list[LoggedProcess] = []  # stopped since the last test report (see recent_processes)


@dataclass
class LoggedProcess:
    """A process started in a session of its own, its stdout and stderr going to `log`."""

    process: subprocess.Popen
    log: Path
    name: str
    failed_loudly: bool = False  # its log tail is in a failure message already

    def tail(self, lines: int = 60) -> str:
        return read_log_tail(self.log, lines)

    def fail(self, why: str) -> NoReturn:
        self.failed_loudly = True
        pytest.fail(f"{self.name}: {why}\n--- last lines of {self.log} ---\n{self.tail()}", pytrace=False)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to its whole process group (a `make` and what it started), SIGKILL after `timeout`."""
        if self in _LIVE:
            _LIVE.remove(self)
            _STOPPED.append(self)
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        return self.process.wait(timeout=timeout)

    def _signal(self, signum: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def recent_processes() -> list[LoggedProcess]:
    """The processes of this worker still running or stopped since the last call, for a failing test's
    report (a `with running_server(...)` in the test body has stopped its server by then)."""
    recent = [p for p in [*_STOPPED, *_LIVE] if not p.failed_loudly]
    _STOPPED.clear()
    return recent


def start_logged(
    command: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    name: str | None = None,
) -> LoggedProcess:
    """Start `command` with stdout and stderr appended to `log`, in a new session (so `stop` reaches
    its children), with no stdin."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    started = LoggedProcess(process, log, name or " ".join(command[:3]))
    _LIVE.append(started)
    return started


def answers(response: requests.Response) -> bool:
    """The default readiness: the server answered with anything but a 5xx."""
    return response.status_code < 500


def wait_for_http(
    url: str,
    *,
    timeout: float,
    server: LoggedProcess | None = None,
    headers: Mapping[str, str] | None = None,
    ready: Callable[[requests.Response], bool] = answers,
) -> requests.Response:
    """Poll `url` until `ready(response)`; returns that response.

    Fails the test (with the server's exit code and log tail when `server` is given, and stops it)
    as soon as the server exits, or after `timeout` seconds without a ready answer.
    """
    deadline = time.monotonic() + timeout
    delay, last_seen = 0.1, "no answer yet"
    while True:
        if server is not None and server.process.poll() is not None:
            server.stop()
            server.fail(f"exited with code {server.process.returncode} before {url} answered (last seen: {last_seen})")
        try:
            response = requests.get(url, headers=dict(headers or {}), timeout=5)
            if ready(response):
                return response
            last_seen = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last_seen = f"{type(exc).__name__}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            why = f"{url} was not ready within {timeout:g} s (last seen: {last_seen})"
            if server is None:
                pytest.fail(why, pytrace=False)
            server.stop()
            server.fail(f"{why}; it was stopped")
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 1.0)


@contextmanager
def running_server(
    command: Sequence[str],
    log: Path,
    *,
    url: str,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    headers: Mapping[str, str] | None = None,
    ready: Callable[[requests.Response], bool] = answers,
    name: str | None = None,
) -> Iterator[LoggedProcess]:
    """Start a server with its output in `log`, wait until `url` is ready (or fail loudly), stop it on exit."""
    server = start_logged(command, log, env=env, cwd=cwd, name=name)
    try:
        wait_for_http(url, timeout=timeout, server=server, headers=headers, ready=ready)
        yield server
    finally:
        server.stop()

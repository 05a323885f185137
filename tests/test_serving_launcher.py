"""serve() starts a server (the real binary when installed), waits for it, and explains failures."""

from __future__ import annotations

import os
import socket
import stat
import sys
import time

import numpy as np
import pytest
from serving_fixtures.models import expected_probabilities, export_classifier

from course_lib.errors import CourseError
from course_lib.serving import RestClient, serve, wait_for_server
from course_lib.serving.launcher import free_port


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("launcher") / "clf"
    export_classifier(base, 1)
    return base


@pytest.fixture
def fake_tf_serving(tmp_path, monkeypatch):
    """A `tensorflow_model_server` on PATH that records its arguments and runs the course's server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_file = tmp_path / "args.txt"
    script = bin_dir / "tensorflow_model_server"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {args_file}\nexec {sys.executable} -m course_lib.serving "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return script, args_file


@pytest.mark.slow  # starts a model server
def test_serve_launches_tensorflow_model_server_when_it_is_installed(model_base, fake_tf_serving):
    script, args_file = fake_tf_serving
    with serve("clf", model_base, timeout=180) as server:
        assert server.implementation == "tensorflow_model_server" and server.command[0] == str(script)
        flags = args_file.read_text().split()
        assert f"--model_base_path={model_base}" in flags and "--model_name=clf" in flags
        assert not any(flag.startswith("--host") for flag in flags)  # the real binary has no --host flag
        x = np.array([[0.5, 1, 1.5, 2]], np.float32)
        answer = RestClient(server.rest_url, "clf").predict(instances=x)["predictions"]
        np.testing.assert_allclose(answer, expected_probabilities(x, 1.0), rtol=1e-5)
        assert wait_for_server(server.rest_url, 5, model_name="clf")["model_version_status"][0]["state"] == "AVAILABLE"
        assert wait_for_server(server.rest_url, 5) is None
        with pytest.raises(CourseError, match="HTTP 404: Could not find any versions of model nope"):
            wait_for_server(server.rest_url, timeout=0.5, model_name="nope")
        assert "Exporting HTTP/REST API at:127.0.0.1:" in server.log_tail()
    assert not server.is_running() and server.process.returncode == 0


@pytest.mark.slow  # starts a model server
def test_a_server_that_exits_raises_with_its_log_tail(model_base):
    with pytest.raises(CourseError) as info:
        serve("clf", model_base, use_real_server=False, extra_flags=["--no_such_flag=1"], timeout=60)
    message = str(info.value)
    assert "exited with code 1" in message and "Unknown flags: --no_such_flag=1" in message


@pytest.mark.slow  # starts a model server
def test_a_server_that_never_serves_times_out_with_its_log_tail_and_is_stopped(tmp_path):
    empty = tmp_path / "nothing_exported_yet"
    empty.mkdir()
    port = free_port()
    started = time.monotonic()
    with pytest.raises(CourseError) as info:
        serve("ghost", empty, rest_api_port=port, use_real_server=False, timeout=6)
    message = str(info.value)
    assert "did not serve within 6 s" in message and "it was stopped" in message
    assert "Last lines of its log" in message and f"Starting course_lib.serving for ghost ({empty})" in message
    assert time.monotonic() - started < 30
    with socket.socket() as sock:  # the stopped server freed its port
        sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "Give model_name and model_base_path, or model_config_file"),
        ({"model_name": "m", "model_base_path": "/definitely/not/here"}, "is not a folder"),
        (
            {"model_name": "m", "model_base_path": ".", "use_real_server": True},
            "tensorflow_model_server is not on PATH",
        ),
    ],
)
def test_serve_rejects_bad_arguments_before_starting_anything(kwargs, message, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tensorflow_model_server here
    with pytest.raises(CourseError, match=message):
        serve(**kwargs)


def test_wait_for_server_backs_off_and_reports_what_it_saw_last():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(CourseError, match="connection refused") as info:
        wait_for_server(f"http://127.0.0.1:{port}", timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 10
    assert f"http://127.0.0.1:{port}" in str(info.value)

"""The helpers that start servers in tests (tests/servers.py) fail loudly, with the server's log."""

import contextlib
import sys
import time

import psutil
import pytest
import requests
from servers import free_port, running_server, start_logged, wait_for_http

CHATTY_SERVER = """
import http.server, sys
sys.stdout.write("a log line of a busy server\\n" * 10_000)  # ~280 KiB: an unread pipe blocks at 64 KiB
sys.stdout.flush()
print("serving", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def test_a_server_that_logs_more_than_a_pipe_holds_still_comes_up_and_its_log_is_kept(tmp_path):
    port = free_port()
    log = tmp_path / "chatty.log"
    with running_server(
        [sys.executable, "-c", CHATTY_SERVER, str(port)], log, url=f"http://127.0.0.1:{port}/", timeout=30, cwd=tmp_path
    ) as server:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert "serving" in server.tail(5) and "GET / HTTP/1.1" in server.tail(5)
    assert server.process.returncode is not None
    assert log.stat().st_size > 64 * 1024


def test_a_server_that_exits_fails_the_test_with_its_exit_code_and_log_tail(tmp_path):
    command = [sys.executable, "-c", "import sys; print('config file not found: x.conf'); sys.exit(3)"]
    with (
        pytest.raises(pytest.fail.Exception) as info,
        running_server(
            command, tmp_path / "dying.log", url=f"http://127.0.0.1:{free_port()}/", timeout=30, name="dying server"
        ),
    ):
        pass
    message = str(info.value)
    assert "dying server: exited with code 3" in message and "config file not found: x.conf" in message


def test_a_server_that_never_answers_fails_after_the_timeout_and_is_stopped(tmp_path):
    port = free_port()
    command = [sys.executable, "-c", "import time; print('still loading', flush=True); time.sleep(600)"]
    started = time.monotonic()
    with (
        pytest.raises(pytest.fail.Exception) as info,
        running_server(
            command, tmp_path / "stuck.log", url=f"http://127.0.0.1:{port}/", timeout=2, name="stuck server"
        ),
    ):
        pass
    message = str(info.value)
    assert "was not ready within 2 s" in message and "it was stopped" in message and "still loading" in message
    assert time.monotonic() - started < 30


def test_waiting_without_a_process_fails_with_what_it_saw_last():
    with pytest.raises(pytest.fail.Exception, match="ConnectionError"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=0.5)


def test_the_start_server_fixture_stops_the_whole_process_group(start_server, tmp_path):
    # A shell that starts a child and waits, as `make` does: stopping it must stop the child too.
    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    server = start_server(["sh", "-c", f'{sys.executable} -c "{child}" & wait'], name="sh")
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and server.process.poll() is None, server.tail()
        time.sleep(0.05)  # polling a file the child writes: no event to wait on across processes
    grandchild = psutil.Process(int(pid_file.read_text()))
    server.stop()
    with contextlib.suppress(psutil.NoSuchProcess):
        assert grandchild.wait(timeout=10) is not None or grandchild.status() == psutil.STATUS_ZOMBIE


def test_start_logged_appends_to_an_existing_log(tmp_path):
    log = tmp_path / "twice.log"
    for word in ("first", "second"):
        start_logged([sys.executable, "-c", f"print({word!r})"], log).process.wait(timeout=30)
    assert log.read_text().split() == ["first", "second"]

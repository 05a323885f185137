"""`make lab` serves JupyterLab on 127.0.0.1 and answers only with the token."""

import socket
import subprocess
import sys
import time

import pytest
import requests

from course_lib.dev.lab import lab_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port, token = free_port(), "course-test-token"
    home = tmp_path_factory.mktemp("home")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    process = subprocess.Popen(
        [sys.executable, "-m", "course_lib.dev.lab", "--port", str(port), "--token", token],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{process.stdout.read()[-3000:]}")
        try:
            requests.get(f"{url}/api", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("JupyterLab did not answer within 90 s")
    yield url, token
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_lab_answers_with_the_token(lab):
    url, token = lab
    response = requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=10)
    assert response.status_code == 200
    assert "started" in response.json()


def test_lab_refuses_without_the_token(lab):
    url, _ = lab
    assert requests.get(f"{url}/api/status", timeout=10).status_code == 403
    assert requests.get(f"{url}/api/status", headers={"Authorization": "token wrong"}, timeout=10).status_code == 403


def test_lab_serves_the_lab_page_and_the_course_kernel(lab):
    url, token = lab
    page = requests.get(f"{url}/lab", params={"token": token}, timeout=10)
    assert page.status_code == 200 and "JupyterLab" in page.text
    specs = requests.get(f"{url}/api/kernelspecs", headers={"Authorization": f"token {token}"}, timeout=10).json()
    assert "tf-course" in specs["kernelspecs"]


def test_lab_binds_loopback_by_default():
    command = lab_command("127.0.0.1", 8888, "t")
    assert "--ip=127.0.0.1" in command and "--IdentityProvider.token=t" in command

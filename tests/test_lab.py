"""`make lab` serves JupyterLab on 127.0.0.1, answers only with the token, and opens your copy in work/."""

import shutil
import sys

import pytest
import requests
from servers import free_port, running_server

from course_lib.lab import FIRST_NOTEBOOK, lab_command
from course_lib.paths import course_root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port, token = free_port(), "course-test-token"
    home = tmp_path_factory.mktemp("home")
    root = tmp_path_factory.mktemp("course")  # a course checkout of its own: the repo's work/ stays untouched
    shutil.copytree(course_root() / "notebooks", root / "notebooks")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    url = f"http://127.0.0.1:{port}"
    with running_server(
        [sys.executable, "-m", "course_lib", "lab", "--port", str(port), "--token", token, "--root", str(root)],
        home / "lab.log",
        url=f"{url}/api",
        timeout=90,
        env=env,
        name="JupyterLab",
    ):
        yield url, token, root


def test_lab_answers_with_the_token(lab):
    url, token, _ = lab
    response = requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=10)
    assert response.status_code == 200
    assert "started" in response.json()


def test_lab_refuses_without_the_token(lab):
    url, *_ = lab
    assert requests.get(f"{url}/api/status", timeout=10).status_code == 403
    assert requests.get(f"{url}/api/status", headers={"Authorization": "token wrong"}, timeout=10).status_code == 403


def test_lab_serves_the_lab_page_and_the_course_kernel(lab):
    url, token, _ = lab
    page = requests.get(f"{url}/lab", params={"token": token}, timeout=10)
    assert page.status_code == 200 and "JupyterLab" in page.text
    specs = requests.get(f"{url}/api/kernelspecs", headers={"Authorization": f"token {token}"}, timeout=10).json()
    assert "tf-course" in specs["kernelspecs"]


def test_lab_binds_loopback_by_default():
    command = lab_command("127.0.0.1", 8888, "t")
    assert "--ip=127.0.0.1" in command and "--IdentityProvider.token=t" in command


def test_lab_opens_the_students_own_copy_made_from_the_shipped_notebook(lab):
    url, token, root = lab
    assert FIRST_NOTEBOOK.startswith("work/")
    shipped = root / "notebooks" / FIRST_NOTEBOOK.removeprefix("work/")
    assert (root / FIRST_NOTEBOOK).read_bytes() == shipped.read_bytes()
    model = requests.get(
        f"{url}/api/contents/{FIRST_NOTEBOOK}",
        params={"content": 0},
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    assert model.status_code == 200 and model.json()["type"] == "notebook"

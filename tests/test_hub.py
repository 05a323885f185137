"""The class hub end to end, all real processes on 127.0.0.1 (issue 19).

`make hub` starts JupyterHub with configurable-http-proxy from a roster; an instructor releases
assignment 01 through formgrader, the hub service; three students log in at the login form (PAM,
their own Unix passwords), spawn through the REST API, fetch, run cells in a real kernel through the
Jupyter Server API, and submit; the instructor collects and grades (the course's parallel grading)
and releases feedback, which students fetch. Unix permissions keep students out of each other's work
and the instructor's sources. Accounts (tfc-e2e-*), processes and cgroups go, even when a test fails.

The grading round trip uses the small fixture assignment next to 01: grading 01 runs TensorFlow
training for each student (minutes on a loaded 2-core machine); releasing, fetching, running a cell
and submitting use 01 itself.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from servers import free_port, start_logged, wait_for_http

from course_lib.hub.client import HubUser
from course_lib.hub.launch import tear_down, unreachable_interpreter
from course_lib.hub.settings import COURSE_ID, HubSettings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "classroom"
TINY = "tiny-assignment"
ASSIGNMENT = "01-tensorflow-and-keras"
TEACHER, TA, GRADER = "tfc-e2e-teacher", "tfc-e2e-ta", "tfc-e2e-grader"
STUDENTS = ["tfc-e2e-s1", "tfc-e2e-s2", "tfc-e2e-s3"]
ANSWERS = {"tfc-e2e-s1": "perfect", "tfc-e2e-s2": "partial", "tfc-e2e-s3": "untouched"}
SCORES = {"tfc-e2e-s1": "6 / 6", "tfc-e2e-s2": "3 / 6", "tfc-e2e-s3": "0 / 6"}

pytestmark = pytest.mark.slow  # a hub, four servers, nbgrader


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "the class hub needs root (useradd, servers run as each student)"
    if shutil.which("npm") is None:
        return "no npm on PATH: `make hub` installs configurable-http-proxy with `npm ci` (Node 20)"
    return unreachable_interpreter()


@pytest.fixture(scope="module")
def hub():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="tfc-hub-e2e-", dir="/tmp"))
    os.chmod(work, 0o755)  # students reach the exchange below it
    passwords = {name: f"pw-{name}-{os.getpid()}" for name in [TEACHER, TA, *STUDENTS]}
    (work / "passwords").write_text("".join(f"{n}:{p}\n" for n, p in passwords.items()))
    roster = work / "roster.csv"
    roster.write_text(f"username,role\n{TEACHER},instructor\n{TA},ta\n" + "".join(f"{s},student\n" for s in STUDENTS))
    settings = HubSettings(
        roster=roster,
        state=work / "state",
        port=free_port(),
        hub_port=free_port(),
        proxy_api_port=free_port(),
        formgrader_port=free_port(),
        grader=GRADER,
    )
    env = {**os.environ, **settings.environment()}
    command = ["make", "--no-print-directory", "-C", str(REPO), "hub", f"ROSTER={roster}"]
    command += [f"HUB_STATE={settings.state}", f"HUB_PORT={settings.port}", f"PASSWORDS={work / 'passwords'}"]
    server = start_logged(command, work / "make-hub.log", env=env, name="make hub")
    try:
        wait_for_http(f"{settings.url}/hub/api/", timeout=300, server=server, ready=lambda r: r.status_code == 200)
        yield {"settings": settings, "passwords": passwords, "server": server, "users": {}}
    finally:
        server.stop(timeout=60)
        tear_down(settings)
        shutil.copy(work / "make-hub.log", Path(tempfile.gettempdir()) / "tfc-hub-e2e-last.log")
        shutil.rmtree(work, ignore_errors=True)


def login(hub, name: str) -> HubUser:
    if name not in hub["users"]:
        user = HubUser(hub["settings"].url, name, timeout=120)
        user.login(hub["passwords"][name])
        hub["users"][name] = user
    return hub["users"][name]


def as_user(name: str, *command: str) -> subprocess.CompletedProcess:
    """A command run as that Unix user: what a student could do in a terminal of their server."""
    return subprocess.run(["runuser", "-u", name, "--", *command], capture_output=True, text=True, check=False)


def classroom(hub, *args: str) -> str:
    settings = hub["settings"]
    result = subprocess.run(
        [sys.executable, "-m", "course_lib.hub", "--state", str(settings.state), "classroom", *args],
        env={**os.environ, **settings.environment(), "COURSE_GRADING_CELL_TIMEOUT": "60"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_hub_refuses_api_requests_without_a_token(hub):
    url = hub["settings"].url
    assert requests.get(f"{url}/hub/api/users", timeout=30).status_code == 403
    bad = requests.get(f"{url}/hub/api/users", headers={"Authorization": "token not-a-token"}, timeout=30)
    assert bad.status_code == 403
    wrong = requests.post(
        f"{url}/hub/login", data={"username": STUDENTS[0], "password": "wrong"}, allow_redirects=False, timeout=30
    )
    assert wrong.status_code != 302  # PAM said no: no session, no redirect into the hub


def test_the_instructor_releases_01_through_formgrader(hub):
    settings = hub["settings"]
    classroom(hub, "generate", ASSIGNMENT)
    shutil.copytree(FIXTURES / "source" / TINY, settings.course_dir / "solutions" / TINY)
    grader = pwd.getpwnam(GRADER)
    subprocess.run(["chown", "-R", f"{grader.pw_uid}:{grader.pw_gid}", str(settings.course_dir)], check=True)
    classroom(hub, "generate", TINY)
    teacher = login(hub, TEACHER)
    page = teacher.formgrader("GET", "/")
    assert page.status_code == 200 and "formgrader" in page.text.lower()
    assert "frame-ancestors 'none'" in page.headers.get("Content-Security-Policy", "")  # nbgrader#1870: own tab
    for assignment in (ASSIGNMENT, TINY):
        released = teacher.formgrader("POST", f"/api/assignment/{assignment}/release")
        assert released.status_code == 200 and released.json()["success"], released.text[:2000]
        assert (settings.exchange / COURSE_ID / "outbound" / assignment / f"{assignment}.ipynb").is_file()
    student = HubUser(settings.url, STUDENTS[0])
    student.login(hub["passwords"][STUDENTS[0]])
    assert student.formgrader("GET", "/api/assignments").status_code == 403  # formgrader is for staff only
    assert login(hub, TA).formgrader("GET", "/api/assignments").status_code == 200


def _spawn_fetch_run_submit(hub, name: str) -> dict:
    user = login(hub, name)
    spawn_s = user.spawn()
    user.nbgrader("fetch", ASSIGNMENT)
    uid = int(user.run_code("import os; print(os.getuid())").strip())
    user.nbgrader("fetch", TINY)
    answer = json.loads((FIXTURES / "submissions" / ANSWERS[name] / f"{TINY}.ipynb").read_text())
    saved = user.server_api("PUT", f"/api/contents/{TINY}/{TINY}.ipynb", json={"type": "notebook", "content": answer})
    assert saved.status_code == 200, saved.text[:500]
    user.nbgrader("submit", TINY)
    return {"spawn_s": spawn_s, "uid": uid}


def test_three_students_spawn_fetch_run_cells_and_submit(hub):
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(STUDENTS, pool.map(lambda n: _spawn_fetch_run_submit(hub, n), STUDENTS), strict=True))
    for name, result in results.items():
        assert result["uid"] == pwd.getpwnam(name).pw_uid, f"{name}'s kernel does not run as {name}"
    # A real cell of notebook 01, as fetched, in the course kernel: the course's setup and TensorFlow.
    first = login(hub, STUDENTS[0])
    notebook = first.server_api("GET", f"/api/contents/{ASSIGNMENT}/{ASSIGNMENT}.ipynb").json()["content"]
    cell = "".join(next(c for c in notebook["cells"] if c["cell_type"] == "code")["source"])
    output = first.run_code(cell + "\nprint('tensorflow', tf.__version__)", timeout=240)
    assert "tensorflow 2." in output
    inbound = hub["settings"].exchange / COURSE_ID / "inbound"
    assert sorted(p.name.split("+")[0] for p in inbound.iterdir()) == STUDENTS


def test_each_server_runs_as_its_student_in_its_own_cgroup(hub):
    log = hub["server"].tail(400)
    for name in STUDENTS:
        uid = pwd.getpwnam(name).pw_uid
        servers = [
            p
            for p in psutil.process_iter(["uids", "cmdline"])
            if p.info["uids"] and p.info["uids"].real == uid and "jupyterhub-singleuser" in " ".join(p.info["cmdline"])
        ]
        assert len(servers) == 1, f"{name}: {len(servers)} servers running as {name}"
        if os.environ.get("COURSE_NO_CGROUPS"):
            assert f"{name}'s server runs WITHOUT memory and CPU limits" in log
            continue
        memberships = Path(f"/proc/{servers[0].pid}/cgroup").read_text()
        assert f"/jupyterhub-{name}" in memberships, memberships
        memory_line = next(line for line in memberships.splitlines() if ":memory:" in line or line.startswith("0::"))
        folder = Path("/sys/fs/cgroup/memory" if ":memory:" in memory_line else "/sys/fs/cgroup")
        folder = folder / memory_line.split(":", 2)[2].lstrip("/")
        limit = (folder / "memory.limit_in_bytes").read_text() if ":memory:" in memory_line else ""
        limit = limit or (folder / "memory.max").read_text()
        assert int(limit) == 2 * 1024**3


def test_students_cannot_read_each_other_or_the_instructor(hub):
    settings = hub["settings"]
    intruder, victim = STUDENTS[1], STUDENTS[0]
    inbound = settings.exchange / COURSE_ID / "inbound"
    assert as_user(intruder, "ls", str(inbound)).returncode != 0  # submissions cannot be listed
    victim_home = Path(pwd.getpwnam(victim).pw_dir)
    assert as_user(intruder, "cat", str(victim_home / TINY / f"{TINY}.ipynb")).returncode != 0
    assert as_user(intruder, "ls", str(victim_home / ".local/share/jupyter/nbgrader_cache")).returncode != 0
    source = settings.course_dir / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert source.is_file() and as_user(intruder, "cat", str(source)).returncode != 0
    assert as_user(intruder, "ls", str(settings.course_dir)).returncode != 0
    assert as_user(intruder, "cat", str(settings.private / "jupyterhub.sqlite")).returncode != 0
    # ...but what the class shares is readable: the released notebook.
    released = settings.exchange / COURSE_ID / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert as_user(intruder, "cat", str(released)).returncode == 0


def test_the_instructor_collects_grades_and_students_fetch_feedback(hub):
    teacher = login(hub, TEACHER)
    collected = teacher.formgrader("POST", f"/api/assignment/{TINY}/collect")
    assert collected.status_code == 200 and collected.json()["success"], collected.text[:2000]
    table = classroom(hub, "grade", TINY, "--workers", "2")
    for name, score in SCORES.items():
        assert f"| {name} | graded | {score} |" in table, table
    classroom(hub, "feedback", TINY)
    released = teacher.formgrader("POST", f"/api/assignment/{TINY}/release_feedback")
    assert released.status_code == 200 and released.json()["success"], released.text[:2000]
    for name in STUDENTS:
        user = login(hub, name)
        user.nbgrader("fetch_feedback", TINY)
        folder = user.server_api("GET", f"/api/contents/{TINY}/feedback").json()["content"]
        html = user.server_api("GET", f"/api/contents/{folder[0]['path']}/{TINY}.html").json()["content"]
        assert "hidden tests ran here" in html and "BEGIN HIDDEN TESTS" not in html


def test_the_idle_culler_runs_as_a_hub_service(hub):
    services = login(hub, TEACHER).hub_api("GET", "/services").json()
    assert {"idle-culler", COURSE_ID} <= set(services)
    culler = [p for p in psutil.process_iter(["cmdline"]) if "jupyterhub_idle_culler" in " ".join(p.info["cmdline"])]
    assert culler, "no jupyterhub_idle_culler process"

"""The class hub's configuration without starting it: roster errors, the settings JupyterHub gets,
the LTI 1.3 example loading into ltiauthenticator, the pinned proxy, and the load test's percentiles."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from jupyterhub.app import JupyterHub
from ltiauthenticator.lti13.auth import LTI13Authenticator
from traitlets.config import Config

from course_lib.errors import CourseError
from course_lib.hub.accounts import read_passwords
from course_lib.hub.loadtest import percentile
from course_lib.hub.roster import read_roster
from course_lib.hub.settings import COURSE_ID, HubSettings, configure

REPO = Path(__file__).resolve().parents[1]
HUB = REPO / "deploy" / "hub"


def test_the_example_roster_has_every_role():
    roster = read_roster(HUB / "roster.example.csv")
    assert roster.with_role("instructor") and roster.with_role("ta") and roster.with_role("student")
    assert all(name.startswith("tfc-") for name in roster.usernames)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("username,role\nAda Lovelace,student\n", "not a valid Unix user name"),
        ("username,role\nada,professor\n", "role 'professor' for ada"),
        ("username,role\nada,student\nada,ta\n", "ada is listed twice"),
        ("name,kind\nada,student\n", "expected the columns `username,role`"),
        ("username,role\n", "lists nobody"),
    ],
)
def test_a_bad_roster_says_which_line_and_why(tmp_path, text, message):
    roster = tmp_path / "roster.csv"
    roster.write_text(text)
    with pytest.raises(CourseError, match=message):
        read_roster(roster)


def test_a_missing_roster_says_what_to_write(tmp_path):
    with pytest.raises(CourseError, match="username,role"):
        read_roster(tmp_path / "nope.csv")


def test_passwords_file_lines(tmp_path):
    good = tmp_path / "good"
    good.write_text("# comment\nada:s3cret:with:colons\n")
    assert read_passwords(good) == {"ada": "s3cret:with:colons"}
    bad = tmp_path / "bad"
    bad.write_text("ada s3cret\n")
    with pytest.raises(CourseError, match="bad:1: expected `username:password`"):
        read_passwords(bad)


def test_settings_round_trip_through_the_environment(tmp_path):
    settings = HubSettings(roster=tmp_path / "r.csv", state=tmp_path / "s", port=9100, cpus=0.5, grader="tfc-g")
    assert HubSettings.from_environment(settings.environment()) == settings
    with pytest.raises(CourseError, match="COURSE_HUB_PORT='eighty': expected a int"):
        HubSettings.from_environment({"COURSE_HUB_PORT": "eighty"})


def test_the_hub_config_binds_loopback_and_gives_each_role_its_access(tmp_path):
    c = Config()
    settings = HubSettings(state=tmp_path / "state", port=9100)
    configure(c, settings)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9100" and c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.authenticator_class == "pam" and c.Authenticator.admin_users == {"tfc-instructor"}
    assert c.JupyterHub.load_groups[f"formgrade-{COURSE_ID}"]["users"] == ["tfc-instructor", "tfc-ta"]
    assert c.Spawner.default_url == "/lab" and c.Spawner.mem_limit == "2G" and c.Spawner.cpu_limit == 1.0
    assert "--MultiKernelManager.default_kernel_name=tf-course" in c.Spawner.args
    formgrader, culler = c.JupyterHub.services
    assert formgrader["name"] == COURSE_ID and formgrader["user"] == settings.grader
    assert "jupyterhub_idle_culler" in culler["command"]
    scopes = {role["name"]: role["scopes"] for role in c.JupyterHub.load_roles}
    assert scopes[f"formgrader-{COURSE_ID}"] == [f"access:services!service={COURSE_ID}"]
    assert str(settings.state / "hub") in c.JupyterHub.db_url  # the database sits in the root-only folder


def test_the_lti13_example_loads_into_ltiauthenticator(monkeypatch):
    monkeypatch.setenv("COURSE_HUB_ROSTER", str(HUB / "roster.example.csv"))
    app = JupyterHub()
    app.load_config_file(str(HUB / "lti13_config.py"))
    assert app.config.JupyterHub.authenticator_class == "ltiauthenticator.lti13.auth.LTI13Authenticator"
    assert app.config.JupyterHub.bind_url.startswith("http://127.0.0.1:")  # the base config came along
    authenticator = LTI13Authenticator(config=app.config)
    assert authenticator.issuer.startswith("https://") and authenticator.client_id
    assert authenticator.jwks_endpoint.startswith("https://") and authenticator.username_key == "custom_uname"


def test_the_proxy_is_pinned_exactly():
    wanted = json.loads((HUB / "package.json").read_text())["dependencies"]["configurable-http-proxy"]
    lock = json.loads((HUB / "package-lock.json").read_text())
    assert wanted[0].isdigit(), "pin an exact version, not a range"
    assert lock["packages"]["node_modules/configurable-http-proxy"]["version"] == wanted


def test_percentiles_by_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0 and percentile(values, 0.95) == 19.0
    assert percentile([3.0], 0.95) == 3.0 and percentile([], 0.5) is None


@pytest.fixture
def open_tmp_path():
    """A folder under /tmp that others can pass through (pytest's own tmp_path sits in a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="tfc-reach-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_checkout_students_cannot_reach_is_named_and_can_be_opened(open_tmp_path, monkeypatch):
    from course_lib.hub import launch

    tmp_path = open_tmp_path
    interpreter = tmp_path / "python-install" / "bin" / "python3"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("")
    interpreter.chmod(0o755)
    checkout = tmp_path / "clone"  # what `mktemp -d` makes: 0700
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "python").symlink_to(interpreter)
    checkout.chmod(0o700)
    monkeypatch.setattr(launch, "BIN", checkout / ".venv" / "bin")

    reason = launch.unreachable_interpreter()
    assert f"{checkout} (on the way to the venv's programs" in reason and f"chmod o+x {checkout}" in reason
    assert launch.let_others_reach_python() == [checkout]
    assert checkout.stat().st_mode & 0o777 == 0o701 and launch.unreachable_interpreter() == ""

    interpreter.parent.chmod(0o700)  # pyenv's interpreter under /root
    assert f"{interpreter.parent} (on the way to its interpreter" in launch.unreachable_interpreter()


def test_processes_left_talking_to_a_stopped_hub_are_stopped():
    """What a hub killed mid-cleanup leaves (the idle culler was seen with parent 1): found by its API."""
    import subprocess

    from course_lib.hub import launch

    settings = HubSettings(hub_port=48081)

    def start(api_url: str) -> subprocess.Popen:
        return subprocess.Popen(["sleep", "120"], env={"JUPYTERHUB_API_URL": api_url}, start_new_session=True)

    leftover = start(f"http://127.0.0.1:{settings.hub_port}/hub/api")
    another_hubs = start("http://127.0.0.1:48082/hub/api")
    try:
        assert launch.stop_leftover_services(settings) == [leftover.pid]
        assert leftover.wait(timeout=10) == -9 and another_hubs.poll() is None
    finally:
        for process in (leftover, another_hubs):
            process.kill()
            process.wait()

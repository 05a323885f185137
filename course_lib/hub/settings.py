"""Everything the hub's configuration depends on, in one place, read from COURSE_HUB_* variables.

deploy/hub/jupyterhub_config.py is two lines: it reads these settings and calls `configure`. The
command line (`python -m course_lib.hub start`) sets the variables, so `make hub`, the tests and
the load test start the same hub with different ports, roster and state folder.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from course_lib.errors import CourseError
from course_lib.hub.roster import read_roster
from course_lib.paths import KERNEL_NAME, REPO_ROOT

COURSE_ID = "tf-basics"  # nbgrader's course id (the repository's nbgrader_config.py); the formgrader service's name
HUB_DIR = REPO_ROOT / "deploy" / "hub"
BIN = Path(sys.executable).parent


@dataclass
class HubSettings:
    roster: Path = HUB_DIR / "roster.example.csv"
    state: Path = HUB_DIR / "state"
    port: int = 8000  # the proxy: the one address users open
    hub_port: int = 8081  # the hub's own API, behind the proxy
    proxy_api_port: int = 8001
    formgrader_port: int = 9999
    grader: str = "tfc-grader"  # the Unix account that owns the course directory and runs formgrader
    memory: str = "2G"  # per student server, kernels included
    cpus: float = 1.0
    idle_timeout: int = 3600  # seconds before the culler stops an idle server
    proxy: Path = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> HubSettings:
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(f"COURSE_HUB_{field.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls, field.name))
            try:
                values[field.name] = Path(raw).absolute() if kind is type(HUB_DIR) else kind(raw)
            except ValueError:
                raise CourseError(f"COURSE_HUB_{field.name.upper()}={raw!r}: expected a {kind.__name__}") from None
        return cls(**values)

    @classmethod
    def on_free_ports(cls, roster: Path, state: Path, grader: str) -> HubSettings:
        """A hub of its own beside any other (tests, the load test): each port a free one on 127.0.0.1."""
        from course_lib.serving.launcher import free_port  # only here: jupyterhub_config.py stays light

        return cls(
            roster=roster,
            state=state,
            grader=grader,
            port=free_port(),
            hub_port=free_port(),
            proxy_api_port=free_port(),
            formgrader_port=free_port(),
        )

    def environment(self) -> dict[str, str]:
        """The COURSE_HUB_* variables that make `from_environment` return these settings."""
        return {f"COURSE_HUB_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def exchange(self) -> Path:
        return self.state / "exchange"

    @property
    def course_dir(self) -> Path:
        return self.state / "course"

    @property
    def student_config(self) -> Path:
        return self.state / "jupyter-config"

    @property
    def private(self) -> Path:
        """The hub's own files (database, cookie secret, pid files): root only."""
        return self.state / "hub"

    @property
    def accounts_record(self) -> Path:
        return self.private / "accounts.json"


def configure(c: Any, settings: HubSettings) -> None:
    """Fill JupyterHub's config object `c` for the course (called by deploy/hub/jupyterhub_config.py)."""
    from course_lib.hub.spawner import CourseSpawner  # imports JupyterHub: only where the hub runs

    roster = read_roster(settings.roster)
    instructors, tas, students = (roster.with_role(role) for role in ("instructor", "ta", "student"))
    state = settings.private

    # Loopback only; the proxy is the one public port, the hub and its proxy API stay behind it.
    c.JupyterHub.bind_url = settings.url
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = [str(settings.proxy)]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True  # stopping the hub stops every student's server

    # Real accounts, no shared password: PAM checks each student's own Unix password.
    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.open_sessions = False  # no login session (systemd-logind) per server
    c.Authenticator.allowed_users = set(roster.usernames)
    c.Authenticator.admin_users = set(instructors)
    c.JupyterHub.load_groups = {
        f"formgrade-{COURSE_ID}": {"users": [*instructors, *tas]},  # nbgrader's group names
        f"nbgrader-{COURSE_ID}": {"users": students},
    }
    c.JupyterHub.load_roles = [
        {
            "name": f"formgrader-{COURSE_ID}",
            "groups": [f"formgrade-{COURSE_ID}"],
            "scopes": [f"access:services!service={COURSE_ID}"],
        },
        {
            "name": "idle-culler",
            "services": ["idle-culler"],
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        },
    ]

    # Each server: the student's own account, own cgroup, JupyterLab with the course kernel.
    c.JupyterHub.spawner_class = CourseSpawner
    c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
    c.Spawner.default_url = "/lab"
    c.Spawner.args = [f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}"]
    c.Spawner.environment = {"JUPYTER_CONFIG_PATH": str(settings.student_config)}
    c.Spawner.mem_limit = settings.memory
    c.Spawner.cpu_limit = settings.cpus
    c.Spawner.start_timeout = 180  # a class logging in at once on 2 cores
    c.Spawner.http_timeout = 180

    c.JupyterHub.services = [
        {
            # nbgrader's documented hub service: formgrader in a server of the grader account, for the
            # formgrade-<course> group. Open it in its own tab (nbgrader#1870: JupyterHub >= 4.1 forbids
            # the iframe that JupyterLab's Formgrader menu uses).
            "name": COURSE_ID,
            "url": f"http://127.0.0.1:{settings.formgrader_port}",
            "command": [str(BIN / "jupyterhub-singleuser"), "--ServerApp.default_url=/formgrader"],
            "user": settings.grader,
            "cwd": str(settings.course_dir),
            "oauth_no_confirm": True,
            "display": True,
        },
        {
            "name": "idle-culler",
            "command": [
                str(BIN / "python"),
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={settings.idle_timeout}",
                "--cull-every=60",
            ],
        },
    ]

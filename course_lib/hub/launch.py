"""Prepare a class (accounts, folders) and run its JupyterHub: for `make hub`, the tests and the load test."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil
import requests

from course_lib.errors import CourseError
from course_lib.hub.accounts import account_exists, ensure_accounts, remove_accounts, require_root
from course_lib.hub.course import prepare_state
from course_lib.hub.roster import read_roster
from course_lib.hub.settings import BIN, HUB_DIR, HubSettings
from course_lib.hub.spawner import remove_leftover_cgroups

CONFIG_FILE = HUB_DIR / "jupyterhub_config.py"


def prepare(settings: HubSettings, passwords: dict[str, str] | None = None) -> dict[str, str]:
    """Accounts for the roster and the grader, and the state folder; the passwords of new accounts."""
    require_root("the class hub")
    if not settings.proxy.exists():
        raise CourseError(
            f"configurable-http-proxy is not installed at {settings.proxy}: run `make hub` "
            "(it runs `npm ci` in deploy/hub), or `cd deploy/hub && npm ci`"
        )
    blocked = unreachable_interpreter()
    if blocked:
        raise CourseError(blocked)
    roster = read_roster(settings.roster)
    settings.private.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.private, 0o700)
    created = ensure_accounts([*roster.usernames, settings.grader], settings.accounts_record, passwords)
    prepare_state(settings)
    remove_leftover_cgroups(roster.usernames)  # of a hub that was killed before it stopped its servers
    return created


def unreachable_interpreter() -> str:
    """Why students could not run the course's Python (servers and kernels run as them); "" if they can.

    Two paths must be searchable by others: the one to the venv's `bin/` (the checkout: `mktemp -d` makes
    0700 folders), and the one to the interpreter the venv was built from (pyenv's under /root, 0700).
    """
    for target, role in _python_paths():
        blocked = _unsearchable_folder(target)
        if blocked:
            return (
                f"other users cannot run {BIN / 'python'}: {blocked} (on the way to {role} {target}) "
                "is not searchable by others. Run the hub from a checkout and a Python they can reach "
                f"(`make clean venv PYTHON=/usr/bin/python3`), or `chmod o+x {blocked}`"
            )
    return ""


def let_others_reach_python() -> list[Path]:
    """`chmod o+x` (search, not read) the folders on the way to the venv and its interpreter; those changed.

    For a test host (a `mktemp -d` clone, pyenv under /root) as a hub host's admin would do it by hand;
    `make hub` itself never changes permissions outside its state folder: it refuses, saying which.
    """
    changed = []
    for target, _ in _python_paths():
        while blocked := _unsearchable_folder(target):
            os.chmod(blocked, blocked.stat().st_mode | stat.S_IXOTH)
            changed.append(blocked)
    return changed


def _python_paths() -> list[tuple[Path, str]]:
    return [(BIN, "the venv's programs"), (Path(os.path.realpath(BIN / "python")), "its interpreter")]


def _unsearchable_folder(target: Path) -> Path | None:
    """The first folder from / down to `target` (or `target` itself) that others cannot pass through or run."""
    for folder in reversed([target, *target.parents]):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def hub_command(config: Path = CONFIG_FILE) -> list[str]:
    return [str(BIN / "jupyterhub"), "-f", str(config)]


def hub_environment(settings: HubSettings) -> dict[str, str]:
    """The hub's environment: the settings, and the venv first on PATH (servers, services and nbgrader's
    `alembic` inherit it)."""
    return {**os.environ, **settings.environment(), "PATH": venv_path()}


def venv_path() -> str:
    return os.pathsep.join([str(BIN), os.environ.get("PATH", "/usr/bin:/bin")])


class RunningHub:
    """A JupyterHub started in the background, with its log in a file; `stop` ends it and its proxy."""

    def __init__(self, settings: HubSettings, log: Path, timeout: float = 120):
        self.settings = settings
        self.log = log
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                hub_command(),
                env=hub_environment(settings),
                cwd=settings.private,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CourseError(f"the hub exited with {self.process.returncode}: {self.tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.settings.url}/hub/api/", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise CourseError(f"the hub did not answer on {self.settings.url} within {timeout} s: {self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def proxy_pid(self) -> int | None:
        return _read_pid(self.settings.private / "proxy.pid")

    def stop(self) -> None:
        """SIGTERM (the hub stops the servers, the services and the proxy), then kill what is left."""
        proxy = self.proxy_pid()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        stop_leftover_proxy(self.settings, proxy)
        stop_leftover_services(self.settings)


def stop_leftover_proxy(settings: HubSettings, pid: int | None = None) -> None:
    """Kill the hub's proxy if it outlived the hub (it runs in a session of its own: a hub killed while
    starting leaves it listening)."""
    pid = pid or _read_pid(settings.private / "proxy.pid")
    if pid is None:
        return
    with contextlib.suppress(psutil.Error):
        leftover = psutil.Process(pid)
        if "configurable-http-proxy" in " ".join(leftover.cmdline()):
            leftover.kill()


def stop_leftover_services(settings: HubSettings) -> list[int]:
    """Kill the processes that still talk to this hub's API after it stopped; their pids.

    JupyterHub starts its services (the idle culler, formgrader) and the students' servers in sessions of
    their own, so a hub killed before its cleanup finished leaves them running. They are found by the
    hub API address the hub gave them; this process and its parents (a terminal in one of the servers)
    are spared.
    """
    api = f"http://127.0.0.1:{settings.hub_port}/hub/api"
    spared = {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
    killed = []
    for process in psutil.process_iter():
        if process.pid in spared:
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get("JUPYTERHUB_API_URL", "").rstrip("/") == api:
                process.kill()
                killed.append(process.pid)
    return killed


def run_as_grader(settings: HubSettings, command: list[str]) -> int:
    """`command` as the grader account in the course directory (its files stay the grader's); exit code."""
    if not account_exists(settings.grader):
        raise CourseError(f"no account {settings.grader}: run `python -m course_lib.hub setup` (or make hub) first")
    home = pwd.getpwnam(settings.grader).pw_dir
    environment = [f"HOME={home}", f"USER={settings.grader}", f"PATH={venv_path()}"]
    as_grader = ["runuser", "-u", settings.grader, "--", "env", *environment]
    return subprocess.run([*as_grader, *command], cwd=settings.course_dir, check=False).returncode


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text())
    return None


def hub_rss_bytes(settings: HubSettings) -> dict[str, int]:
    """Resident memory of the running hub and of its proxy now (from their pid files)."""
    sizes = {}
    for name in ("jupyterhub", "proxy"):
        pid = _read_pid(settings.private / f"{name}.pid")
        with contextlib.suppress(psutil.Error, TypeError):
            sizes["hub" if name == "jupyterhub" else name] = psutil.Process(pid).memory_info().rss  # type: ignore[arg-type]
    return sizes


def tear_down(settings: HubSettings) -> None:
    """Remove the accounts this tool created for the class (homes included) and their cgroups, and stop
    what a hub that did not stop cleanly left running."""
    stop_leftover_proxy(settings)
    stop_leftover_services(settings)
    record = settings.accounts_record
    names = remove_accounts(record) if record.exists() else []
    remove_leftover_cgroups([*names, settings.grader])

"""Unix accounts for the roster: each student's server runs as that student, so files are theirs.

Creates accounts with useradd (root only), sets passwords with chpasswd (PAM then checks them at the
hub's login form), and records which accounts it created, so removing them never touches an account
that existed before (a real user with the same name keeps everything).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import signal
import subprocess
import time
from pathlib import Path

import psutil

from course_lib.errors import CourseError


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise CourseError(
            f"{what} needs root (useradd, servers run as each student): run it with sudo, "
            "or use `make lab` for one person without a hub"
        )


def account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def read_passwords(path: Path) -> dict[str, str]:
    """`username:password` lines (chpasswd's format); a clear error for any other line."""
    passwords: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise CourseError(f"{path}:{number}: expected `username:password`")
        passwords[name.strip()] = password
    return passwords


def _recorded(record: Path) -> list[str]:
    return json.loads(record.read_text()) if record.exists() else []


def _write_record(record: Path, names: list[str]) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.with_suffix(".tmp")
    temporary.write_text(json.dumps(sorted(set(names)), indent=1) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, record)


def _shadow_tool(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    """useradd, chpasswd or userdel, again while another one holds /etc/passwd's lock (two hubs preparing)."""
    for _ in range(40):
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
        if result.returncode == 0 or "lock" not in result.stderr.lower():
            return result
        time.sleep(0.25)
    return result


def set_password(name: str, password: str) -> None:
    result = _shadow_tool(["chpasswd"], f"{name}:{password}\n")
    if result.returncode != 0:
        raise CourseError(f"chpasswd for {name} failed: {result.stderr.strip()}")


def ensure_accounts(names: list[str], record: Path, passwords: dict[str, str] | None = None) -> dict[str, str]:
    """Create the accounts that do not exist yet; the passwords of those created (random unless given).

    An account that exists is left as it is (its password too), unless `passwords` names it. Homes are
    0700: another student cannot read a student's work, fetched assignments or submissions.
    """
    require_root("creating accounts")
    passwords = passwords or {}
    created: dict[str, str] = {}
    recorded = _recorded(record)
    for name in names:
        if not account_exists(name):
            result = _shadow_tool(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name])
            if result.returncode != 0:
                raise CourseError(f"useradd {name} failed: {result.stderr.strip()}")
            recorded.append(name)
            _write_record(record, recorded)
            created[name] = passwords.get(name) or secrets.token_urlsafe(12)
            set_password(name, created[name])
        elif name in passwords:
            set_password(name, passwords[name])
        os.chmod(pwd.getpwnam(name).pw_dir, 0o700)
    return created


def _stop_processes_of(uid: int) -> None:
    """SIGTERM, then SIGKILL, each process of one account (by pid): a server left behind blocks userdel."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if not pids:
            return
        time.sleep(0.5)


def remove_accounts(record: Path, names: list[str] | None = None) -> list[str]:
    """Delete (with their homes) the accounts this tool created, or those of them in `names`."""
    require_root("removing accounts")
    recorded = _recorded(record)
    chosen = [n for n in recorded if names is None or n in names]
    removed = []
    for name in chosen:
        if account_exists(name):
            _stop_processes_of(pwd.getpwnam(name).pw_uid)
            _shadow_tool(["userdel", "--remove", name])
        removed.append(name)
    _write_record(record, [n for n in recorded if n not in removed])
    return removed

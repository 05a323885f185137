"""What the tests that start a class hub share: whether this machine can run one, and its work folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from course_lib.hub.launch import let_others_reach_python


def hub_skip_reason() -> str:
    """Why a class hub cannot run here ("" when it can)."""
    if os.geteuid() != 0:
        return "the class hub needs root (useradd, servers run as each student)"
    if shutil.which("npm") is None:
        return "no npm on PATH: `make hub` installs configurable-http-proxy with `npm ci` (Node 20)"
    return ""


def hub_work_folder(prefix: str) -> Path:
    """A folder under /tmp that students' servers can reach, with this checkout's venv opened to them.

    Students' servers run this checkout's venv: a `mktemp -d` clone (0700) or pyenv under /root
    would stop them. A hub host's admin opens the way by hand (`make hub` says which folder); the
    tests do it here, o+x only.
    """
    for folder in let_others_reach_python():
        print(f"chmod o+x {folder}: students' servers run this checkout's .venv")
    work = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(work, 0o755)  # students reach the exchange below it
    return work

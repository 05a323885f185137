"""The shared folders of a class: nbgrader's exchange, the course directory, the students' config.

nbgrader's documented permissions, made by root before the hub starts:
- exchange root 1777 (anyone may create a course folder in it; the sticky bit stops deleting others'),
  then nbgrader itself makes `<course>/inbound` 2733 on the first release: students may write a
  submission into it, but not list it, so they cannot find another student's submission (its folder
  name ends in a random string);
- the course directory (sources with solutions and hidden tests, gradebook) 0700, owned by the
  grader account that runs formgrader;
- the students' nbgrader config (course id, exchange), world-readable, found through JUPYTER_CONFIG_PATH.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

from course_lib.dev.classroom import COURSE_CONFIG, setup
from course_lib.hub.settings import COURSE_ID, HubSettings
from course_lib.paths import REPO_ROOT, SOLUTIONS

STUDENT_NBGRADER_CONFIG = """# Written by `python -m course_lib.hub`: where students fetch and submit.
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
"""
# Students' servers: the assignment list, not formgrader or the assignment creator (nbgrader's table).
STUDENT_SERVER_CONFIG = {
    "ServerApp": {
        "jpserver_extensions": {
            "nbgrader.server_extensions.formgrader": False,
            "nbgrader.server_extensions.course_list": False,
        }
    }
}


def _chown_tree(root: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, entry.pw_uid, entry.pw_gid)


def prepare_state(settings: HubSettings, sources: Path = REPO_ROOT / SOLUTIONS) -> None:
    """Make the state folder's parts with their owners and modes (idempotent; root only)."""
    settings.state.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.state, 0o755)  # students traverse it to the exchange and their config
    settings.private.mkdir(exist_ok=True)
    os.chmod(settings.private, 0o700)
    settings.exchange.mkdir(exist_ok=True)
    os.chown(settings.exchange, 0, 0)
    os.chmod(settings.exchange, 0o1777)

    settings.student_config.mkdir(exist_ok=True)
    (settings.student_config / "nbgrader_config.py").write_text(
        STUDENT_NBGRADER_CONFIG.format(course_id=COURSE_ID, exchange=str(settings.exchange))
    )
    (settings.student_config / "jupyter_server_config.json").write_text(json.dumps(STUDENT_SERVER_CONFIG, indent=1))
    for path in [settings.student_config, *settings.student_config.iterdir()]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)

    course = settings.course_dir
    setup(course, sources)  # the sources (solutions/) and the repository's grading settings
    (course / "nbgrader_config.py").write_text(
        COURSE_CONFIG.format(
            repo_config=str(REPO_ROOT / "nbgrader_config.py"), root=str(course), exchange=str(settings.exchange)
        )
    )
    leftover = course / "exchange"  # setup's own exchange: the class uses the shared one
    if leftover.is_dir() and not any(leftover.iterdir()):
        leftover.rmdir()
    _chown_tree(course, settings.grader)
    os.chmod(course, 0o700)

"""The class roster: a CSV of `username,role` rows (role: instructor, ta or student).

One file says who may log in to the hub, who gets a Unix account and who may open formgrader, so
the three never disagree.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from course_lib.errors import CourseError

ROLES = ("instructor", "ta", "student")
# What useradd accepts on Debian (NAME_REGEX), kept to lower case: JupyterHub lower-cases names at login.
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


@dataclass(frozen=True)
class Member:
    username: str
    role: str


@dataclass(frozen=True)
class Roster:
    members: tuple[Member, ...]

    def with_role(self, *roles: str) -> list[str]:
        return [m.username for m in self.members if m.role in roles]

    @property
    def usernames(self) -> list[str]:
        return [m.username for m in self.members]


def read_roster(path: Path) -> Roster:
    """The roster in `path`; a clear error naming the line for a bad name, role or duplicate."""
    if not path.is_file():
        raise CourseError(f"no roster at {path}: write a CSV with a header `username,role` (see deploy/hub/)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(line for line in handle if line.strip() and not line.startswith("#")))
    members: list[Member] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        if None in row or "username" not in row or "role" not in row:
            raise CourseError(f"{path}:{number}: expected the columns `username,role`, got {row}")
        name, role = (row["username"] or "").strip(), (row["role"] or "").strip().lower()
        if not USERNAME.match(name):
            raise CourseError(
                f"{path}:{number}: {name!r} is not a valid Unix user name "
                "(lower-case letters, digits, - and _, starting with a letter or _, at most 31 characters)"
            )
        if role not in ROLES:
            raise CourseError(f"{path}:{number}: role {role!r} for {name}: use one of {', '.join(ROLES)}")
        if name in seen:
            raise CourseError(f"{path}:{number}: {name} is listed twice")
        seen.add(name)
        members.append(Member(name, role))
    if not members:
        raise CourseError(f"{path} lists nobody: add `username,role` rows")
    return Roster(tuple(members))

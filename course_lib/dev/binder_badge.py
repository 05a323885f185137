"""Point the README's Binder badge at this repository's GitHub path, read from `git remote`.

The badge's URL needs OWNER/REPO, which only the published repository knows. After pushing the
course to GitHub, run this once (`make binder-badge`) and commit the README:

    python -m course_lib.dev.binder_badge [--remote origin] [--readme README.md] [--check]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from course_lib.errors import CourseError
from course_lib.paths import REPO_ROOT

GITHUB_REMOTE = re.compile(
    r"^(?:git@github\.com:|ssh://git@github\.com/|https://(?:[^@/\s]+@)?github\.com/)"
    r"(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/?$"
)
BADGE = re.compile(r"(https://mybinder\.org/v2/gh/)([^/\s]+/[^/\s]+)(/HEAD\?urlpath=)")
PLACEHOLDER = "OWNER/REPO"


def github_path(remote_url: str) -> str:
    """OWNER/REPO from a GitHub remote URL (SSH or HTTPS)."""
    match = GITHUB_REMOTE.match(remote_url.strip())
    if not match:
        raise CourseError(
            f"{remote_url.strip()!r} is not a GitHub remote: Binder's gh/ badge needs one "
            "(git@github.com:OWNER/REPO.git or https://github.com/OWNER/REPO)"
        )
    return f"{match['owner']}/{match['repo']}"


def badge_path(readme: str) -> str:
    """The OWNER/REPO the README's badge points at now."""
    match = BADGE.search(readme)
    if not match:
        raise CourseError("README.md has no Binder badge (https://mybinder.org/v2/gh/OWNER/REPO/HEAD?urlpath=...)")
    return match.group(2)


def point_badge(readme: str, path: str) -> str:
    """The README with its badge pointing at `path`."""
    badge_path(readme)
    return BADGE.sub(lambda match: f"{match.group(1)}{path}{match.group(3)}", readme, count=1)


def remote_url(remote: str, repo: Path = REPO_ROOT) -> str:
    result = subprocess.run(["git", "remote", "get-url", remote], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CourseError(
            f"no git remote {remote!r} here: push the course to GitHub first "
            f"(git remote add {remote} git@github.com:OWNER/REPO.git), then run this again"
        )
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.binder_badge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the badge still says OWNER/REPO")
    args = parser.parse_args(argv)
    readme = args.readme.read_text()
    try:
        if args.check:
            path = badge_path(readme)
            print(
                f"Binder badge points at {path}"
                if path != PLACEHOLDER
                else "Binder badge still says OWNER/REPO: run `make binder-badge` after pushing to GitHub"
            )
            return 0 if path != PLACEHOLDER else 1
        path = github_path(remote_url(args.remote, args.readme.resolve().parent))
        args.readme.write_text(point_badge(readme, path))
    except CourseError as error:
        print(f"binder_badge: {error}", file=sys.stderr)
        return 2
    print(f"Binder badge now opens https://mybinder.org/v2/gh/{path}/HEAD: commit {args.readme.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The README's Binder badge: OWNER/REPO filled in from the repository's GitHub remote."""

import shutil
import subprocess
from pathlib import Path

import pytest

from course_lib.dev import binder_badge
from course_lib.errors import CourseError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:acme-school/tf-course.git",
        "https://github.com/acme-school/tf-course",
        "https://github.com/acme-school/tf-course.git/",
        "ssh://git@github.com/acme-school/tf-course.git",
        "https://x-access-token@github.com/acme-school/tf-course.git",
    ],
)
def test_github_remotes_give_owner_and_repo(url):
    assert binder_badge.github_path(url) == "acme-school/tf-course"


def test_a_remote_that_is_not_github_is_refused_with_what_binder_needs():
    with pytest.raises(CourseError, match=r"not a GitHub remote.*OWNER/REPO"):
        binder_badge.github_path("https://gitlab.com/acme/tf-course.git")


def git_repo_with_readme(tmp_path: Path, remote: str | None) -> Path:
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    if remote:
        subprocess.run(["git", "remote", "add", "origin", remote], cwd=tmp_path, check=True)
    return tmp_path / "README.md"


def test_the_badge_is_pointed_at_the_remote_and_nothing_else_changes(tmp_path, capsys):
    readme = git_repo_with_readme(tmp_path, "git@github.com:acme-school/tf-course.git")
    before = readme.read_text()
    assert binder_badge.main(["--readme", str(readme), "--check"]) == 1  # still the placeholder
    assert binder_badge.main(["--readme", str(readme)]) == 0
    after = readme.read_text()
    assert "https://mybinder.org/v2/gh/acme-school/tf-course/HEAD?urlpath=lab/tree/work/01-" in after
    assert after.replace("acme-school/tf-course/HEAD", "OWNER/REPO/HEAD", 1) == before
    assert binder_badge.main(["--readme", str(readme), "--check"]) == 0
    assert "Binder badge points at acme-school/tf-course" in capsys.readouterr().out


def test_without_a_remote_the_readme_is_left_alone_and_the_error_says_what_to_do(tmp_path, capsys):
    readme = git_repo_with_readme(tmp_path, None)
    before = readme.read_text()
    assert binder_badge.main(["--readme", str(readme)]) == 2
    assert "git remote add origin git@github.com:OWNER/REPO.git" in capsys.readouterr().err
    assert readme.read_text() == before

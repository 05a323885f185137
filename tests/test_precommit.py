"""The pre-commit hooks: local only, on the venv's pinned tools, and the ruff ones really stop bad code."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".pre-commit-config.yaml"
PRE_COMMIT = ROOT / ".venv" / "bin" / "pre-commit"

pytestmark = pytest.mark.skipif(not PRE_COMMIT.exists(), reason="pre-commit is not installed in .venv (run make)")


def hooks() -> list[dict]:
    return [hook for repo in yaml.safe_load(CONFIG.read_text())["repos"] for hook in repo["hooks"]]


def clean_env(tmp_path: Path) -> dict[str, str]:
    """No GIT_* from a hook that runs these tests, and pre-commit's cache in tmp_path, not in $HOME."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    return env | {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1"}


def test_the_config_is_valid_and_every_hook_is_local_on_the_venvs_tools(tmp_path):
    result = subprocess.run(
        [PRE_COMMIT, "validate-config", CONFIG], capture_output=True, text=True, env=clean_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    repos = yaml.safe_load(CONFIG.read_text())["repos"]
    assert [repo["repo"] for repo in repos] == ["local"] * len(repos), "no remote hook repositories: nothing to clone"
    assert {hook["id"] for hook in hooks()} == {"ruff-check", "ruff-format", "pyright", "notebooks"}
    for hook in hooks():
        assert hook["language"] == "system", hook["id"]
        program = next(word for word in shlex.split(hook["entry"]) if word != "env" and "=" not in word)
        assert program.startswith(".venv/bin/") and (ROOT / program).exists(), (hook["id"], program)
    whole_project = {hook["id"] for hook in hooks() if hook.get("pass_filenames") is False}
    assert whole_project == {"pyright", "notebooks"}
    # A pyrightconfig.json in a folder above the clone (/tmp, $HOME) would win over pyproject.toml without it.
    assert "--project ." in next(hook["entry"] for hook in hooks() if hook["id"] == "pyright")


NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "a1",
            "metadata": {},
            "outputs": [],
            "source": ["shapes = {'laid':   'out', 'for':'teaching'}\n", "shapes"],
        }
    ],
    "metadata": {"language_info": {"name": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.fixture
def sandbox(tmp_path):
    """A git repository with the course's hook config and pyproject, the venv linked in, and sample files."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in (".pre-commit-config.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".gitignore").write_text(".venv\n.ruff_cache/\n")
    (repo / ".venv").symlink_to(ROOT / ".venv")
    (repo / "good.py").write_text('"""Clean and formatted."""\n\nimport os\n\nprint(os.sep)\n')
    (repo / "unused_import.py").write_text("import os\n")
    (repo / "unformatted.py").write_text("values = {  'a':1 }\n")
    (repo / "notebook.ipynb").write_text(json.dumps(NOTEBOOK, indent=1) + "\n")
    (repo / "tests" / "fixtures").mkdir(parents=True)
    (repo / "tests" / "fixtures" / "broken_on_purpose.py").write_text("import os\nx = {  'a':1 }\n")
    env = clean_env(tmp_path)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True, env=env)
    subprocess.run([*git, "add", "."], cwd=repo, check=True, env=env)
    subprocess.run([*git, "commit", "-q", "-m", "sample"], cwd=repo, check=True, env=env)
    return repo


def run_hook(repo: Path, hook: str, *files: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PRE_COMMIT, "run", hook, "--files", *files],
        cwd=repo,
        capture_output=True,
        text=True,
        env=clean_env(repo.parent),
    )


@pytest.mark.skipif(sys.platform == "win32", reason="the hooks run .venv/bin tools")
def test_the_ruff_hooks_pass_clean_code_and_stop_bad_code(sandbox):
    fine = run_hook(sandbox, "ruff-check", "good.py", "notebook.ipynb", "tests/fixtures/broken_on_purpose.py")
    assert fine.returncode == 0, fine.stdout  # fixtures stay excluded even when named (--force-exclude)
    caught = run_hook(sandbox, "ruff-check", "unused_import.py")
    assert caught.returncode == 1 and "F401" in caught.stdout, caught.stdout

    # Notebooks are never formatted (prose-first; notebooks/ is nbgrader's generation), fixtures neither.
    fine = run_hook(sandbox, "ruff-format", "good.py", "notebook.ipynb", "tests/fixtures/broken_on_purpose.py")
    assert fine.returncode == 0, fine.stdout
    caught = run_hook(sandbox, "ruff-format", "unformatted.py")
    assert caught.returncode == 1 and "unformatted.py" in caught.stdout, caught.stdout
    assert (sandbox / "unformatted.py").read_text() == "values = {  'a':1 }\n", "the hook checks, never rewrites"

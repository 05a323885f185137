"""The GitHub workflows: valid for GitHub (actionlint), and running what a developer runs.

actionlint knows each action's runtime, so an action pinned to a retired Node version fails here
before it fails on GitHub; the GPU job's self-hosted label is declared in .github/actionlint.yaml.
"""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = Path(sys.executable).with_name("actionlint")


def test_workflows_pass_actionlint():
    assert [w.name for w in WORKFLOWS] == ["cpu-tests.yml", "currency.yml", "gpu-notebooks.yml"]
    result = subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_retired_action(tmp_path):
    """The check above can fail: an action on Node 20 (retired September 2026) is reported."""
    workflow = tmp_path / ".github" / "workflows" / "old.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        (ROOT / ".github" / "workflows" / "cpu-tests.yml")
        .read_text()
        .replace("actions/checkout@v5", "actions/checkout@v4")
    )
    result = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(workflow)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and 'runtime "node20" is deprecated' in result.stdout


def test_cpu_workflow_runs_make_test_in_debian_with_chromium():
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "cpu-tests.yml").read_text())["jobs"]["test"]
    assert job["container"].endswith("-bookworm"), "Debian's chromium package provides /usr/bin/chromium"
    commands = [step.get("run", "") for step in job["steps"]]
    assert any("apt-get install" in c and "chromium" in c for c in commands)
    assert commands[-1] == "make test"
    assert job["env"]["COURSE_NO_CGROUPS"], "a job container cannot make cgroups: say why the live tests skip"

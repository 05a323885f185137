"""nbval really compares the reference outputs: a changed output must fail it (it passes vacuously
on cells without stored outputs, so we prove the check bites)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "nbval" / "reference.ipynb"


def run_nbval(notebook: Path) -> subprocess.CompletedProcess:
    # Its own --basetemp, so the nested pytest never prunes the temp folders of the outer run.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--nbval-lax",
            "--basetemp",
            str(notebook.parent / "nested-pytest"),
            "--nbval-kernel-name",
            "tf-course",
            str(notebook),
            "-q",
            "--rootdir",
            str(notebook.parent),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=notebook.parent,
    )


@pytest.mark.slow  # nbval runs a notebook
def test_nbval_passes_when_the_reference_output_matches(tmp_path):
    notebook = tmp_path / "reference.ipynb"
    shutil.copy(FIXTURE, notebook)
    result = run_nbval(notebook)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.slow  # nbval runs a notebook
def test_nbval_fails_when_a_reference_output_changes(tmp_path):
    notebook = tmp_path / "reference.ipynb"
    data = json.loads(FIXTURE.read_text())
    data["cells"][0]["outputs"][0]["text"] = ["43\n"]
    notebook.write_text(json.dumps(data))
    result = run_nbval(notebook)
    assert result.returncode == 1
    assert "43" in result.stdout and "42" in result.stdout

"""The papermill runner that CPU and GPU CI use: parameters, executed copies outside git, timings."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.dev.run_notebooks import parse_value, run_notebook, write_summary

FIXTURES = Path(__file__).parent / "fixtures" / "papermill"
REPO = Path(__file__).resolve().parents[1]


def test_parameters_are_parsed_as_python_literals():
    assert parse_value("False") is False
    assert parse_value("8") == 8
    assert parse_value("resnet50") == "resnet50"


def test_a_notebook_runs_with_injected_parameters_and_reports_timings(tmp_path):
    run = run_notebook("params-demo", tmp_path, {"QUICK": False}, source_root=FIXTURES)
    assert run.ok, run.error
    executed = nbformat.read(tmp_path / "params-demo.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "QUICK False REPEATS 100" in printed
    assert run.kernel_peak_rss_mib and 20 < run.kernel_peak_rss_mib < 2048  # an idle IPython kernel
    assert run.slowest_cells[0].seconds >= 0.2 and run.slowest_cells[0].first_line == "import time"


def test_a_failing_notebook_is_reported_not_raised(tmp_path):
    run = run_notebook("broken-demo", tmp_path, {}, source_root=FIXTURES)
    assert not run.ok
    assert "broken on purpose" in run.error
    json_path, md_path = write_summary([run], tmp_path, {})
    assert json.loads(json_path.read_text())["runs"][0]["ok"] is False
    assert "| broken-demo | FAILED |" in md_path.read_text()


def test_the_command_refuses_to_write_executed_copies_into_the_repo():
    result = subprocess.run(
        [sys.executable, "-m", "course_lib.dev.run_notebooks", "--out", str(REPO / "solutions")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "outside the repository" in result.stderr


@pytest.mark.slow  # papermill runs notebook 01
@pytest.mark.parametrize("assignment", ["01-tensorflow-and-keras"])
def test_the_command_runs_a_course_notebook(tmp_path, assignment):
    if not (REPO / "solutions" / assignment).exists():
        pytest.fail(f"solutions/{assignment} is missing")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "course_lib.dev.run_notebooks",
            assignment,
            "-p",
            "QUICK",
            "True",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["parameters"] == {"QUICK": True}
    assert summary["runs"][0]["assignment"] == assignment and summary["runs"][0]["ok"]
    assert (tmp_path / f"{assignment}.ipynb").exists() and (tmp_path / "summary.md").exists()

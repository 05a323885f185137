"""make currency: which pins it holds back, how it reads notebook and pytest results, what its report says.

Nothing here installs TensorFlow: the inputs are the course's real requirement files, pip's real output,
notebooks really executed by the runner and a small pytest run.
"""

import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from course_lib.dev import currency
from course_lib.dev.run_notebooks import run_notebook, write_summary

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "papermill"

# `pip index versions NAME --pre`, as pip 25 printed it on 2026-12-01 (tf-keras: shortened).
PIP_INDEX_TENSORFLOW = """\
tensorflow (2.22.0rc0)
Available versions: 2.22.0rc0, 2.21.0, 2.21.0rc1, 2.21.0rc0, 2.20.0, 2.20.0rc0, 2.19.1, 2.19.0
  INSTALLED: 2.21.0
"""
PIP_INDEX_TF_KERAS = """\
tf-keras (2.21.0)
Available versions: 2.21.0, 2.20.1, 2.19.0, 2.19.0rc0, 2.18.0, 2.18.0rc0, 2.17.0
  INSTALLED: 2.21.0
  LATEST:    2.21.0
"""


def test_the_tensorflow_family_and_its_dependents_are_held_back_and_nothing_else():
    kept, dropped = currency.filter_requirements(
        (REPO / "requirements.txt").read_text(), currency.TF_FAMILY | currency.TF_DEPENDENTS
    )
    assert sorted(dropped) == ["tensorflow", "tensorflow-hub", "tensorflow-serving-api", "tf-keras"]
    assert "numpy==2.4.6" in kept and "papermill==2.7.0" in kept
    assert not any("#" in line or line.startswith(("tensorflow", "tf-keras")) for line in kept)

    kept, dropped = currency.filter_requirements((REPO / "constraints.txt").read_text(), currency.TF_FAMILY)
    assert {"keras", "tf-keras", "tensorflow"} <= set(dropped), "tf_keras in the lock is tf-keras"
    assert "ml_dtypes==0.6.0" in kept and "protobuf==7.36.2" in kept
    assert not any(line.lower().startswith(("keras==", "tf_keras", "tensorflow==")) for line in kept)


def test_requirement_lines_with_markers_and_options_are_read_right():
    text = 'TF.Keras >= 2.0 ; python_version >= "3.10"  # old name\n-r other.txt\n\n# comment\nnumpy\n'
    assert currency.requirement_name(text.splitlines()[0]) == "tf-keras"
    assert currency.filter_requirements(text, {"tf-keras"}) == (["numpy"], ["tf-keras"])
    assert currency.pinned_version((REPO / "constraints.txt").read_text(), "tf-keras") == "2.21.0"
    assert currency.pinned_version("keras>=3\n", "keras") is None


def test_every_requirement_that_depends_on_tensorflow_is_a_named_dependent():
    """A new requirement that depends on tensorflow or tf-keras (tensorflow-datasets, say) must be in
    TF_DEPENDENTS, or the currency run would let pip move TensorFlow back to a version it accepts."""
    names = [currency.requirement_name(line) for line in (REPO / "requirements.txt").read_text().splitlines()]
    depending = set()
    for name in filter(None, names):
        for requirement in importlib.metadata.requires(name) or []:
            if "extra ==" not in requirement and currency.requirement_name(requirement) in currency.TF_FAMILY:
                depending.add(name)
    assert depending - currency.TF_FAMILY == set(currency.TF_DEPENDENTS)


def test_the_newest_versions_come_from_pip_index_output():
    assert currency.parse_index_versions(PIP_INDEX_TENSORFLOW)[:2] == ["2.22.0rc0", "2.21.0"]
    assert currency.parse_index_versions("keras (3.15.1)\n") == ["3.15.1"]
    assert currency.parse_index_versions("ERROR: No matching distribution found for nothing\n") == []


def test_tf_keras_follows_tensorflows_minor_version():
    versions = currency.parse_index_versions(PIP_INDEX_TF_KERAS)
    assert currency.pick_tf_keras(versions, "2.19.0") == ("2.19.0", True), "the release, not its rc"
    assert currency.pick_tf_keras(versions, "2.21.0") == ("2.21.0", True)
    assert currency.pick_tf_keras(versions, "2.22.0rc0") == ("2.21.0", False), "none for 2.22 yet: newest"
    assert currency.minor_of("2.22.0rc0") == (2, 22)


# What pip 25 printed when tf-keras 2.21.0 met tensorflow 2.22.0rc0 (run of 2026-12-01).
PIP_CONFLICT = """\
Collecting tf-keras==2.21.0
  Downloading tf_keras-2.21.0-py3-none-any.whl (1.7 MB)

The conflict is caused by:
    tf-keras 2.21.0 depends on tensorflow<2.22 and >=2.21
    The user requested (constraint) tensorflow==2.22.0rc0

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    tensorflow

ERROR: Cannot install tf-keras==2.21.0 because these package versions have conflicting dependencies.
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""


def test_a_pip_conflict_is_said_in_one_line():
    assert currency.pip_conflict(PIP_CONFLICT) == (
        "tf-keras 2.21.0 depends on tensorflow<2.22 and >=2.21; The user requested (constraint) tensorflow==2.22.0rc0"
    )
    assert currency.pip_conflict("ERROR: No matching distribution found for tensorflow==9.0\n") == (
        "ERROR: No matching distribution found for tensorflow==9.0"
    )


def test_the_report_names_the_commit_it_tested(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f.txt"], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], check=True
    )
    commit = currency.course_commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{12}", commit)
    (tmp_path / "f.txt").write_text("b")
    assert currency.course_commit(tmp_path) == commit + " with uncommitted changes"
    assert currency.course_commit(tmp_path / "missing").startswith("unknown")


def test_a_failing_notebook_reports_its_source_cell_and_first_error_line(tmp_path):
    runs = [
        run_notebook("params-demo", tmp_path, {}, source_root=FIXTURES),
        run_notebook("broken-demo", tmp_path, {}, source_root=FIXTURES),
    ]
    summary, _ = write_summary(runs, tmp_path, {})
    executed = json.loads((tmp_path / "broken-demo.ipynb").read_text())
    assert len(executed["cells"]) > 1, "papermill adds its error banner: the index must not count it"

    ok, broken = currency.notebook_results(json.loads(summary.read_text()))
    assert ok == {"notebook": "params-demo", "ok": True, "seconds": runs[0].seconds, "error": None}
    assert broken["ok"] is False
    assert broken["error"] == {
        "cell": 0,
        "execution_count": 1,
        "ename": "RuntimeError",
        "evalue": "this notebook is broken on purpose",
        "source": "raise RuntimeError('this notebook is broken on purpose')",
    }


def test_a_notebook_that_stopped_without_an_error_output_reports_the_runners_last_line(tmp_path):
    summary = {
        "runs": [
            {
                "assignment": "05-inference",
                "output": str(tmp_path / "never-written.ipynb"),
                "ok": False,
                "seconds": 600.0,
                "error": "Traceback...\nnbclient.exceptions.DeadKernelError: Kernel died\n",
            }
        ]
    }
    [result] = currency.notebook_results(summary)
    assert result["error"]["evalue"] == "nbclient.exceptions.DeadKernelError: Kernel died"
    assert result["error"]["cell"] is None


def run_small_suite(tmp_path) -> subprocess.CompletedProcess:
    (tmp_path / "test_small.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.fixture
        def broken():
            raise OSError("fixture broke")

        def test_passes():
            pass

        def test_fails():
            assert 1 + 1 == 3, "arithmetic changed | in the new release\\nsecond line"

        def test_errors(broken):
            pass

        @pytest.mark.parametrize("n", [1])
        def test_skips(n):
            pytest.skip("not today")
    """)
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-ra",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(tmp_path / "test_small.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )


def test_pytest_output_gives_counts_and_each_failure_with_its_first_line(tmp_path):
    result = run_small_suite(tmp_path)
    assert result.returncode == 1, result.stdout
    parsed = currency.parse_pytest_output(result.stdout)
    assert parsed["counts"] == {"failed": 1, "passed": 1, "skipped": 1, "error": 1}
    failures = {f["nodeid"]: f for f in parsed["failures"]}
    assert set(failures) == {"test_small.py::test_fails", "test_small.py::test_errors"}
    assert failures["test_small.py::test_fails"]["outcome"] == "failed"
    assert failures["test_small.py::test_fails"]["message"].startswith("AssertionError: arithmetic changed |")
    assert failures["test_small.py::test_errors"]["outcome"] == "error"
    assert "fixture broke" in failures["test_small.py::test_errors"]["message"]


def test_the_report_names_versions_broken_notebooks_and_failing_tests(tmp_path):
    parsed = currency.parse_pytest_output(run_small_suite(tmp_path).stdout)
    report = {
        "date": "2026-12-01",
        "commit": "0123456789ab",
        "python": "3.11.7",
        "notes": ["No tf-keras for tensorflow 2.22 on the index yet."],
        "pins": {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0"},
        "newest": {"tensorflow": "2.22.0rc0", "keras": "3.15.1", "tf-keras": "2.21.0"},
        "versions": {"tensorflow": "2.22.0rc0", "keras": "3.15.1", "tf-keras": "2.21.0", "numpy": "2.4.6"},
        "imported": {"tensorflow": "2.22.0-rc0", "keras": "3.15.1"},
        "pip_check": ["tf-keras 2.21.0 has requirement tensorflow<2.22,>=2.21, but you have tensorflow 2.22.0rc0."],
        "notebooks": [
            {"notebook": "01-tensorflow-and-keras", "ok": True, "seconds": 12.5, "error": None},
            {
                "notebook": "04-loading-pretrained",
                "ok": False,
                "seconds": 30.1,
                "error": {
                    "cell": 7,
                    "execution_count": 5,
                    "ename": "ImportError",
                    "evalue": "cannot import a|b",
                    "source": "import tensorflow_hub as hub",
                },
            },
        ],
        "tests": {"command": 'pytest -m "not slow" tests', "returncode": 1, "seconds": 301.0, **parsed},
        "seconds": {"environment": 200.0, "total": 900.0},
    }
    json_path, md_path = currency.write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text()) == report
    text = md_path.read_text()
    assert "Course at commit 0123456789ab, Python 3.11.7." in text
    assert "| tensorflow | 2.21.0 | 2.22.0rc0 | 2.22.0rc0 |" in text
    assert "Imported in the environment: tensorflow 2.22.0-rc0, keras 3.15.1." in text
    assert "- No tf-keras for tensorflow 2.22 on the index yet." in text
    assert "tf-keras 2.21.0 has requirement tensorflow<2.22" in text
    assert "1 of 2 notebooks ran to the end." in text
    assert "| 04-loading-pretrained | FAILED | 30.1 | cell 7: `ImportError`: cannot import a\\|b |" in text
    assert "| 01-tensorflow-and-keras | ok | 12.5 |  |" in text
    assert '`pytest -m "not slow" tests`: 1 failed, 1 passed, 1 skipped, 1 error (exit status 1, 301 s).' in text
    assert re.search(
        r"^\| `test_small.py::test_fails` \| failed \| AssertionError: arithmetic changed \\\| in", text, re.MULTILINE
    ), "a | in a message would split the table cell"
    assert "Time: environment 200 s, total 900 s." in text


def test_a_run_that_stopped_early_says_what_was_not_run(tmp_path):
    text = currency.render_report(
        {
            "date": "2026-12-01",
            "notes": ["The run stopped: RuntimeError: no wheel"],
            "notebooks_skipped": "--skip-notebooks",
        }
    )
    assert "- The run stopped: RuntimeError: no wheel" in text
    assert "Not run: --skip-notebooks" in text
    assert "## Test suite\n\nNot run: the environment could not be built." in text


def test_the_tool_needs_only_the_standard_library():
    """`make currency` runs it with the system's python3, before any course environment exists."""
    probe = (
        "import sys, course_lib.dev.currency; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'nbformat', 'tensorflow', 'numpy', 'yaml', "
        "'papermill', 'nbclient', 'psutil'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_suite_runs_without_the_slow_tests_when_that_marker_exists():
    assert currency.default_pytest_args() == ["-n", "2", "--dist", "loadscope", "-m", "not slow", "tests"]


def test_make_currency_and_its_weekly_workflow():
    dry = subprocess.run(
        ["make", "-n", "currency", "CURRENCY_OUT=results/currency-test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "-m course_lib.dev.currency --out results/currency-test" in dry
    assert ".venv/bin/python" not in dry, "the currency run builds its own environment, not the course's"
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "currency.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "workflow_dispatch" in triggers and triggers["schedule"][0]["cron"]
    steps = workflow["jobs"]["currency"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert any(r.startswith("make currency") for r in runs)
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()" and "results/currency" in upload["with"]["path"]
    assert (REPO / ".gitignore").read_text().count("/.currency-venv/") == 1

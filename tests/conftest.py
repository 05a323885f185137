"""Shared test setup: quiet TensorFlow's C++ logs, servers with logs in files, and expensive fixtures
kept on one xdist worker.

Markers (pyproject.toml): `slow` for what runs notebooks, nbgrader, `make`, JupyterLab or a browser
(`make test-fast` leaves them out; `make test` runs everything), `cpu_sensitive` for what `make test`
runs a second time with oneDNN off.
"""

import collections
import os

import pytest
from servers import LoggedProcess, recent_processes, start_logged
from xdist.scheduler import LoadScopeScheduling

# `make test` runs nbval over solutions/ in the same session as these tests; the notebooks under tests/
# are fixtures (submissions, assignments), never run by nbval.
collect_ignore_glob = ["*.ipynb"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


# ----- servers -------------------------------------------------------------------------------------


@pytest.fixture
def start_server(tmp_path):
    """`start_server(command, name=..., env=..., cwd=...)`: a process whose output goes to a log under
    tmp_path (see tests/servers.py); stopped, with its process group, when the test ends."""
    started: list[LoggedProcess] = []

    def start(command, *, name: str = "server", **kwargs) -> LoggedProcess:
        started.append(start_logged(command, tmp_path / f"{name}-{len(started)}.log", name=name, **kwargs))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test shows the log tails of the servers it used: a module's still running, its own
    stopped by now."""
    outcome = yield
    report = outcome.get_result()
    recent = recent_processes()
    if report.failed:
        for process in recent:
            report.sections.append((f"last lines of {process.name} ({process.log})", process.tail(40)))


# ----- slow tests ----------------------------------------------------------------------------------

# tests/test_grading_config.py grades real submissions with nbgrader in its module fixture `graded`;
# its tests that use it are slow. (A stand-in for `@pytest.mark.slow` in that file, whose owner is
# still changing it: once the marks are there, delete this hook.)
SLOW_FIXTURES_BY_MODULE = {"test_grading_config.py": {"graded"}}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES_BY_MODULE.get(item.path.name, set()) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    heaviest_scopes_first(items)


# ----- scheduling ----------------------------------------------------------------------------------


def scope_of(nodeid: str) -> str:
    """What one worker runs together: a test module, one notebook's round trip, one notebook under nbval."""
    path, _, rest = nodeid.partition("::")
    if path.endswith("test_notebooks.py") and rest.endswith("]"):
        return f"notebook-{rest.rsplit('[', 1)[1][:-1]}"
    return path


# Worker-seconds of the scopes that take 10 s or more, measured in `make test` on the 2-core VM
# (2026-12-02, `--durations=0`, summed per scope; nbval: the notebook's run time). Running the longest
# first leaves the short ones to fill the end, so both workers finish together (longest processing time
# first). A scope missing here counts 0.2 s per test; a stale number costs minutes, never a result.
SCOPE_SECONDS = {
    "notebook-11-capstone": 212,
    "tests/test_instructor_walkthrough.py": 164,
    "tests/test_classroom.py": 138,
    "tests/test_grading_config.py": 138,
    "tests/test_browser.py": 138,
    "notebook-05-inference": 128,
    "tests/test_hub.py": 116,
    "notebook-06-serving": 111,
    "notebook-08-troubleshooting": 108,
    "notebook-09-performance": 99,
    "notebook-10-resource-estimation": 99,
    "tests/test_binder_check.py": 95,
    "notebook-04-loading-pretrained": 88,
    "tests/test_parallel_grading.py": 87,
    "tests/test_student_work.py": 87,
    "notebook-01-tensorflow-and-keras": 87,
    "notebook-07-tensorflow-vs-pytorch": 81,
    "notebook-03-model-formats": 73,
    "notebook-02-install-and-verify": 72,
    "solutions/11-capstone/11-capstone.ipynb": 55,
    "tests/test_grades_csv.py": 44,
    "solutions/05-inference/05-inference.ipynb": 40,
    "tests/test_serving_warmup.py": 35,
    "tests/test_serving_benchmark.py": 33,
    "solutions/06-serving/06-serving.ipynb": 33,
    "solutions/08-troubleshooting/08-troubleshooting.ipynb": 28,
    "tests/test_serving_tls.py": 28,
    "solutions/09-performance/09-performance.ipynb": 27,
    "tests/test_classifier.py": 26,
    "tests/test_serving_observe.py": 26,
    "solutions/10-resource-estimation/10-resource-estimation.ipynb": 25,
    "tests/test_run_notebooks.py": 25,
    "tests/test_kubernetes_grading.py": 24,
    "solutions/04-loading-pretrained/04-loading-pretrained.ipynb": 21,
    "solutions/07-tensorflow-vs-pytorch/07-tensorflow-vs-pytorch.ipynb": 20,
    "tests/test_models.py": 22,
    "tests/test_serving_wire.py": 21,
    "tests/test_serving_launcher.py": 18,
    "solutions/03-model-formats/03-model-formats.ipynb": 18,
    "tests/test_gpu_report.py": 17,
    "tests/test_memory.py": 17,
    "tests/test_serving_api.py": 16,
    "tests/test_serving_fuzz.py": 16,
    "solutions/01-tensorflow-and-keras/01-tensorflow-and-keras.ipynb": 15,
    "solutions/02-install-and-verify/02-install-and-verify.ipynb": 15,
    "tests/test_environment.py": 15,
    "tests/test_progress.py": 12,
    "tests/test_serving_hot_reload.py": 11,
    "tests/test_serving_oip.py": 11,
}


def heaviest_scopes_first(items: list) -> None:
    """Order the items by their scope's expected time, longest first; a scope's own order is kept."""
    scopes = [scope_of(item.nodeid) for item in items]
    tests_per_scope = collections.Counter(scopes)
    expected = [SCOPE_SECONDS.get(scope, 0.2 * tests_per_scope[scope]) for scope in scopes]
    order = sorted(range(len(items)), key=lambda index: (-expected[index], index))
    items[:] = [items[index] for index in order]


if not callable(getattr(LoadScopeScheduling, "_split_scope", None)):
    raise RuntimeError(
        "pytest-xdist no longer has LoadScopeScheduling._split_scope, which CourseScheduling "
        "overrides: see its docstring in tests/conftest.py for what replaces it"
    )


class CourseScheduling(LoadScopeScheduling):
    """Send each test module to one worker, so module-scoped fixtures (a server, a graded course)
    are built once; but spread the notebook round trips one notebook per scope, so notebooks grade
    in parallel.

    Why a scheduler of our own: the supported way to say this is `@pytest.mark.xdist_group(name)` with
    `--dist loadgroup`, and that is broken with pytest 9.2 and pytest-xdist 3.8: loadgroup passes the
    group by appending `@name` to the legacy `_nodeid`, which pytest 9.2 no longer reads, so every group
    is silently ignored and each notebook's tests spread over all workers (each worker then grades the
    notebook again). That is pytest-xdist issue 1386,
    https://github.com/pytest-dev/pytest-xdist/issues/1386 (a fix proposed in PR 1388).
    So this overrides `LoadScopeScheduling._split_scope`, a private method (the check above fails loudly
    if xdist drops it), and `pytest_xdist_make_scheduler` below uses it for `--dist load` and
    `--dist loadscope` (what `-n` alone and the Makefile ask for); other `--dist` modes are left alone.

    Remove it when a pytest-xdist release fixes issue 1386: the issue's reproducer (two test modules
    whose parametrized test has `@pytest.mark.xdist_group(name="g")`, run with
    `pytest -n 2 --dist loadgroup -v`) then shows `@g` after every test id, all on one worker.
    Then mark the `graded` params of tests/test_notebooks.py with `pytest.mark.xdist_group(assignment)`,
    put `--dist loadgroup` in the Makefile's pytest lines, and delete this class and the hook.
    """

    def __init__(self, config, log=None):
        super().__init__(config, log)
        # Keep the collection's order, heaviest scope first (heaviest_scopes_first), instead of xdist's
        # default of most tests first: that sent the few-test, minutes-long scopes (a notebook's round
        # trip, the hub) last, and one worker ran them alone at the end.
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") in ("load", "loadscope"):
        return CourseScheduling(config, log)
    return None  # xdist's own scheduler for the mode asked for


def pytest_report_header(config):
    if getattr(config.option, "numprocesses", None) and config.getoption("dist") in ("load", "loadscope"):
        return (
            f"xdist: --dist {config.getoption('dist')} scheduled by tests/conftest.py's CourseScheduling "
            "(one worker per module, one per notebook round trip; pytest-xdist#1386)"
        )
    return None

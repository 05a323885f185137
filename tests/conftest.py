"""Shared test setup: quiet TensorFlow's C++ logs, and keep expensive fixtures on one xdist worker."""

import os

from xdist.scheduler import LoadScopeScheduling

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


class CourseScheduling(LoadScopeScheduling):
    """Send each test module to one worker, so module-scoped fixtures (a server, a graded course)
    are built once; but spread the notebook round trips one notebook per scope, so notebooks grade
    in parallel. (xdist's `loadgroup` marks are ignored with pytest 9: it rewrites a nodeid that
    pytest no longer reads, so we choose scopes here instead.)
    """

    def _split_scope(self, nodeid: str) -> str:
        path, _, rest = nodeid.partition("::")
        if path.endswith("test_notebooks.py") and rest.endswith("]"):
            return f"notebook-{rest.rsplit('[', 1)[1][:-1]}"
        return path


def pytest_xdist_make_scheduler(config, log):
    return CourseScheduling(config, log)

"""Shared test setup: quiet TensorFlow's C++ logs, and keep expensive fixtures on one xdist worker."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(items):
    """Group tests so module-scoped fixtures (a server, a graded course) are built once.

    With `--dist loadgroup`, each group runs on one worker: one group per test module, except the
    notebook round trips, which get one group per notebook so that notebooks grade in parallel.
    """
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module == "test_notebooks" and hasattr(item, "callspec"):
            group = f"notebook-{item.callspec.id}"
        else:
            group = module
        item.add_marker(pytest.mark.xdist_group(group))

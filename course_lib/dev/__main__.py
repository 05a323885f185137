"""`tf-course-dev <command>` (or `python -m course_lib.dev <command>`): authors' and instructors' tools.

Students never need these. The grading kernel's launcher (course_lib.dev.kernel_limits) is started
by Jupyter from its kernelspec, not by hand, so it is not listed.
"""

from __future__ import annotations

import sys

from course_lib.__main__ import Commands, dispatch
from course_lib.paths import COURSE_ID

COMMANDS: Commands = {
    "generate": ("course_lib.dev.generate", "main", "regenerate notebooks/ from solutions/ (make notebooks)"),
    "notebooks": ("course_lib.dev.notebooks", "main", "strip, check or refresh the notebooks' stored outputs"),
    "run-notebooks": ("course_lib.dev.run_notebooks", "main", "execute notebooks with papermill, timed"),
    "classroom": ("course_lib.dev.classroom", "main", "a course directory: generate, collect, grade, feedback"),
    "gpu-report": ("course_lib.dev.gpu_report", "main", "the measured performance report (make gpu-report)"),
    "binder-check": ("course_lib.dev.binder_check", "main", "every notebook under Binder's 2 GiB / 1 CPU"),
    "binder-badge": ("course_lib.dev.binder_badge", "main", "point the README's Binder badge at the remote"),
    "quota-threads": ("course_lib.dev.quota_threads", "main", "CPU quota against TensorFlow's thread count"),
    "lab-startup": ("course_lib.dev.lab_startup", "main", "how long `make lab` takes to serve JupyterLab"),
    "mutants": ("course_lib.dev.mutants", "main", "how many wrong answers the graded tests catch (make mutants)"),
    "currency": ("course_lib.dev.currency", "main", "the course against the newest TensorFlow and Keras"),
    "capacity": ("course_lib.dev.capacity", "main", "size the course on Kubernetes from the measurements"),
    "serving-benchmark": ("course_lib.serving.benchmark", "main", "the serving goals measured in one run (issue 18)"),
    "oip-client-venv": ("course_lib.dev.oip_client_venv", "main", "the tritonclient venv the /v2 tests use"),
    "hub": ("course_lib.hub.__main__", "main", "the class hub: accounts, start, classroom, load-test (make hub)"),
    "batch-grading": (
        "course_lib.dev.batch_grading",
        "main",
        "grading as a Kubernetes Indexed Job: prepare, export, merge",
    ),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(f"{COURSE_ID}-dev", COMMANDS, argv)  # the script's name (pyproject.toml)


if __name__ == "__main__":
    sys.exit(main())

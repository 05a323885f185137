"""The grading kernel: an ordinary IPython kernel started under memory and CPU-time limits.

Student code is untrusted: an allocation of 100 GB or a busy loop must fail that submission, not
the grading machine. nbgrader starts the `tf-course-grading` kernel (see nbgrader_config.py), whose
kernelspec runs this module: it sets RLIMIT_AS (address space; an oversized allocation raises
MemoryError inside the student's cell) and RLIMIT_CPU (CPU seconds for the whole notebook; the
kernel is killed past it), then becomes the kernel. Per-cell wall-clock limits are nbgrader's
`Execute.timeout`.

Under `nbgrader validate` (and the Validate button) it also sends stderr as stdout, because
nbgrader's validation fails a test cell with any stderr output and takes no extra preprocessors:
TensorFlow's log lines, warnings and progress bars must not fail a correct answer there either
(issue 14; `nbgrader autograde` sets stderr aside itself, see course_lib/dev/scoring.py).

    COURSE_GRADING_MEMORY_MB   (default 4096; 0 = no limit: CUDA needs a huge address space on GPU graders)
    COURSE_GRADING_CPU_SECONDS (default 900; 0 = no limit)

    python -m course_lib.dev.kernel_limits install   # register the kernelspec in this environment
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

from ipykernel.iostream import OutStream

from course_lib.paths import GRADING_KERNEL_NAME as KERNEL_NAME

DEFAULT_MEMORY_MB = 4096
DEFAULT_CPU_SECONDS = 900


def apply_limits(memory_mb: int, cpu_seconds: int) -> None:
    """Limit this process (and what it starts); 0 leaves a limit unset."""
    if memory_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


class StderrAsStdout(OutStream):
    """ipykernel's output stream, except that stderr (Python and file descriptor 2) is sent as stdout."""

    def __init__(self, session, pub_thread, name, *args, **kwargs):
        super().__init__(session, pub_thread, name, *args, **kwargs)
        if name == "stderr":
            self.name, self.topic = "stdout", b"stream.stdout"


def validating() -> bool:
    """True in a kernel that nbgrader started to validate (nbgrader sets this for its kernels)."""
    return os.environ.get("NBGRADER_EXECUTION") == "validate"


def install(prefix: str = sys.prefix) -> Path:
    """Write the kernelspec next to the course kernel, pointing at this interpreter."""
    folder = Path(prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "course_lib.dev.kernel_limits", "-f", "{connection_file}"],
        "display_name": "Python 3 (TF course, grading limits)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder


def main() -> None:
    if sys.argv[1:2] == ["install"]:
        print(f"installed kernelspec {install()}")
        return
    apply_limits(
        int(os.environ.get("COURSE_GRADING_MEMORY_MB", DEFAULT_MEMORY_MB)),
        int(os.environ.get("COURSE_GRADING_CPU_SECONDS", DEFAULT_CPU_SECONDS)),
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if validating():
        sys.argv.append("--IPKernelApp.outstream_class=course_lib.dev.kernel_limits.StderrAsStdout")
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()

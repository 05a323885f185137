"""The venv that holds tritonclient, the real client the Open Inference Protocol test drives.

tritonclient[http] pins ml-dtypes<=0.5.4 and TensorFlow needs 0.6, so the client cannot live in
.venv. This builds `.oip-venv` from `requirements-oip.txt` (every package pinned) once, and again
only when that file or the Python version changes: a stamp file inside the venv records both.

It is built without pip of its own (`venv --without-pip`), installed by .venv's pip with
`--python`, `--no-deps` and `--no-compile`: that is most of what an install costs on a small machine.

    python -m course_lib.dev.oip_client_venv      # prints the client venv's python
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from course_lib.errors import CourseError
from course_lib.paths import REPO_ROOT

VENV = REPO_ROOT / ".oip-venv"
REQUIREMENTS = REPO_ROOT / "requirements-oip.txt"
STAMP = ".requirements-stamp"


def _fingerprint(requirements: Path) -> str:
    text = requirements.read_bytes() + sys.version.encode()
    return hashlib.sha256(text).hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_oip_client_venv(venv: Path = VENV, requirements: Path = REQUIREMENTS) -> Path:
    """The client venv's python, building the venv first if it is missing or out of date."""
    if not requirements.is_file():
        raise CourseError(f"{requirements} is missing: it lists the Open Inference Protocol client's packages")
    venv.parent.mkdir(parents=True, exist_ok=True)
    wanted = _fingerprint(requirements)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        stamp = venv / STAMP
        if venv_python(venv).exists() and stamp.is_file() and stamp.read_text() == wanted:
            return venv_python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "create the venv")
        pip = [sys.executable, "-m", "pip", "--python", str(venv_python(venv)), "install"]
        _run([*pip, "--quiet", "--no-deps", "--no-compile", "-r", str(requirements)], "install its packages")
        stamp.write_text(wanted)
    return venv_python(venv)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise CourseError(
            f"Could not {what} for the Open Inference Protocol client (exit {result.returncode}): "
            f"{' '.join(command)}\n{tail}\nIs the package registry reachable? Delete {VENV.name} and retry."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tf-course-dev oip-client-venv",
        description="Build (once) the venv with tritonclient that the Open Inference Protocol tests use; "
        "print its Python.",
    )
    parser.parse_args(argv)
    print(ensure_oip_client_venv())
    return 0


if __name__ == "__main__":
    sys.exit(main())

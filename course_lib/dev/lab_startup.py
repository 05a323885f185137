"""How long `make lab` takes to serve JupyterLab on a checkout that is already built.

Each run starts `make lab` on a free port with a scratch HOME, polls /api/status until JupyterLab
answers with the token, records the seconds, and stops it with Ctrl-C as a student would. The
goal (issue 12): at most 15 s on 2 cores when nothing needs to be regenerated.

    python -m course_lib.dev.lab_startup [--runs 5] [--checkout .] [--venv .venv]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from course_lib.paths import course_root
from course_lib.serving.launcher import free_port, read_log_tail


def start_lab_and_stop(checkout: Path, venv: Path, home: Path, timeout: float = 120) -> tuple[float, str]:
    """Run `make lab` until JupyterLab answers, then Ctrl-C it; returns (seconds to served, its output).

    The output goes to a log file in `home` (a pipe read only at the end would block JupyterLab once
    about 64 KiB of log had built up); the error when it never serves ends with the log's tail.
    """
    port, token = free_port(), "startup-check"
    log = home / f"make-lab-{port}.log"
    started = time.monotonic()
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            # -o: the venv is built already; never rebuild it (with another checkout's files) from here.
            [
                "make",
                "-C",
                str(checkout),
                "-o",
                str(venv / ".course-installed"),
                "lab",
                f"VENV={venv}",
                f"PORT={port}",
                f"TOKEN={token}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime")},
        )
    served = None
    try:
        while time.monotonic() - started < timeout and process.poll() is None:
            try:
                if requests.get(
                    f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"}, timeout=2
                ).ok:
                    served = time.monotonic() - started
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)  # measured to 0.1 s: a finer poll would only load the CPU JupyterLab starts on
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text(errors="replace")
    if served is None:
        raise RuntimeError(
            f"make lab did not serve JupyterLab within {timeout:g} s "
            f"(exit {process.returncode}); last lines of {log}:\n{read_log_tail(log, 40)}"
        )
    return served, output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.lab_startup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checkout", type=Path, default=course_root())
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix))
    args = parser.parse_args(argv)
    seconds = []
    with tempfile.TemporaryDirectory(prefix="lab-startup-home-") as home:
        for run in range(1, args.runs + 1):
            elapsed, _ = start_lab_and_stop(args.checkout.resolve(), args.venv.resolve(), Path(home))
            seconds.append(elapsed)
            print(f"run {run}: JupyterLab served {elapsed:.2f} s after `make lab`", flush=True)
    print(
        f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s over {len(seconds)} runs "
        f"on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

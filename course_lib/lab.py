"""Start JupyterLab for the course: on 127.0.0.1, with a token, opened on your first notebook.

Before it starts, `work/` (your copies of the notebooks) is brought up to date with the course's
`notebooks/` without overwriting anything you changed (course_lib.workspace). Nothing is generated
at start: JupyterLab is up in seconds. `make lab` calls this; the tests start it the same way, so
what they check is what students get.

    python -m course_lib lab [--host 127.0.0.1] [--port 8888] [--token TOKEN] [--root COURSE]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from course_lib import workspace
from course_lib.paths import course_root

FIRST_NOTEBOOK = f"{workspace.WORKSPACE}/01-tensorflow-and-keras/01-tensorflow-and-keras.ipynb"


def lab_command(
    host: str, port: int, token: str, root: Path | None = None, url: str = f"/lab/tree/{FIRST_NOTEBOOK}"
) -> list[str]:
    """The jupyter command line; as root (GPU containers) JupyterLab needs --allow-root."""
    jupyter = str(Path(sys.executable).parent / "jupyter")
    command = [
        jupyter,
        "lab",
        "--no-browser",
        f"--ip={host}",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root or course_root()}",
        f"--LabApp.default_url={url}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--token", default=os.environ.get("TOKEN") or secrets.token_hex(16))
    parser.add_argument(
        "--root", type=Path, default=None, help="folder JupyterLab serves (default: the course checkout)"
    )
    parser.add_argument("--url", default=f"/lab/tree/{FIRST_NOTEBOOK}", help="page it opens")
    parser.add_argument(
        "--no-workspace",
        action="store_true",
        help="serve --root as it is, without syncing its work/ (instructors' formgrader)",
    )
    args = parser.parse_args(argv)
    root = (args.root or course_root()).resolve()
    if not args.no_workspace:
        print(workspace.sync(root).summary(), flush=True)
    command = lab_command(args.host, args.port, args.token, root, args.url)
    print(f"JupyterLab: http://{args.host}:{args.port}/lab?token={args.token}", flush=True)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

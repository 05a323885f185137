"""Start JupyterLab for the course: on 127.0.0.1, with a token, opened on the first notebook.

`make lab` calls this after building the environment and the student notebooks; the tests start
it the same way, so what they check is what students get.

    python -m course_lib.dev.lab [--host 127.0.0.1] [--port 8888] [--token TOKEN]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from course_lib.dev.notebooks import REPO_ROOT

FIRST_NOTEBOOK = "notebooks/01-tensorflow-and-keras/01-tensorflow-and-keras.ipynb"


def lab_command(host: str, port: int, token: str, root: Path = REPO_ROOT,
                url: str = f"/lab/tree/{FIRST_NOTEBOOK}") -> list[str]:
    """The jupyter command line; as root (GPU containers) JupyterLab needs --allow-root."""
    jupyter = str(Path(sys.executable).parent / "jupyter")
    command = [
        jupyter, "lab", "--no-browser", f"--ip={host}", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.default_url={url}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.dev.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--token", default=os.environ.get("TOKEN") or secrets.token_hex(16))
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="folder JupyterLab serves")
    parser.add_argument("--url", default=f"/lab/tree/{FIRST_NOTEBOOK}", help="page it opens")
    args = parser.parse_args(argv)
    command = lab_command(args.host, args.port, args.token, args.root.resolve(), args.url)
    print(f"JupyterLab: http://{args.host}:{args.port}/lab?token={args.token}", flush=True)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

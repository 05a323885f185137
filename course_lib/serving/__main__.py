"""`python -m course_lib.serving --model_name=m --model_base_path=/models/m` starts the server.

The flags are tensorflow_model_server's (see `--help`); errors in them print one line that says
what to fix, and the process exits with status 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname).1s %(name)s] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    if "--version" in argv:
        from course_lib import __version__

        print(f"course_lib.serving {__version__} (TF-Serving-compatible REST and gRPC APIs)")
        return 0
    from course_lib.errors import CourseError
    from course_lib.serving.config import parse_server_flags

    try:
        options = parse_server_flags(argv)
    except CourseError as exc:
        print(f"course_lib.serving: error: {exc}", file=sys.stderr)
        return 1
    models = ", ".join(f"{m.name} ({m.base_path})" for m in options.model_config.model_config_list.config)
    logging.getLogger("course_lib.serving").info("Starting course_lib.serving for %s; loading TensorFlow", models)
    from course_lib.serving.server import run_server

    try:
        asyncio.run(run_server(options))
    except CourseError as exc:
        print(f"course_lib.serving: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

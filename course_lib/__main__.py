"""`tf-course <command>` (or `python -m course_lib <command>`): the course's command line.

Each command lives in the module that owns it; this file only dispatches, so a broken optional
dependency of one command does not break the others. The authors' and instructors' tools have the
same shape under `tf-course-dev` (course_lib/dev/__main__.py). Every command answers `--help`.
"""

from __future__ import annotations

import importlib
import sys

from course_lib.paths import COURSE_ID

# name: (module, function taking the remaining arguments, one line of help)
Commands = dict[str, tuple[str, str, str]]

COMMANDS: Commands = {
    "lab": ("course_lib.lab", "main", "start JupyterLab on your notebooks in work/"),
    "workspace": ("course_lib.workspace", "main", "bring work/ up to date, never overwriting your changes"),
    "fresh": ("course_lib.workspace", "fresh_main", "a fresh copy of a course notebook beside yours"),
    "progress": ("course_lib.progress", "main", "run your notebooks' visible tests and show your points"),
    "doctor": ("course_lib.environment", "main", "print the environment report and what to fix"),
    "prefetch": ("course_lib.models.prefetch", "prefetch_main", "download the pretrained weights the course uses"),
    "bench": ("course_lib.bench", "main", "latency and throughput of a model over batch sizes"),
    "formats": ("course_lib.formats.cli", "main", "save one model in every format and compare them"),
    "memory": ("course_lib.memory.cli", "main", "estimate (and measure) a model's memory"),
    "serve": ("course_lib.serving.__main__", "main", "the TF-Serving-compatible model server (its flags)"),
    "loadtest": ("course_lib.serving.loadtest", "main", "a bounded load test of a model server on 127.0.0.1"),
}


def usage(program: str, commands: Commands) -> str:
    width = max(map(len, commands))
    lines = [f"usage: {program} <command> [options]   ({program} <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, _, help_text) in commands.items()]
    return "\n".join(lines)


def dispatch(program: str, commands: Commands, argv: list[str] | None = None) -> int:
    """Run `commands[argv[0]]` with the rest of argv; usage on no command, --help or an unknown one."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(program, commands))
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in commands:
        print(f"unknown command {command!r}\n\n{usage(program, commands)}", file=sys.stderr)
        return 2
    module_name, function_name, _ = commands[command]
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    return dispatch(COURSE_ID, COMMANDS, argv)  # the script's name (pyproject.toml)


if __name__ == "__main__":
    sys.exit(main())

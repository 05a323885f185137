"""`python -m course_lib <command>`: the course's command line.

Each command lives in the module that owns it; this file only dispatches, so a broken optional
dependency of one command does not break the others.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "doctor": ("course_lib.environment", "main", "print the environment report and what to fix"),
    "prefetch": ("course_lib.models.prefetch", "prefetch_main", "download the pretrained weights the course uses"),
    "lab": ("course_lib.lab", "main", "start JupyterLab on your notebooks in work/"),
    "workspace": ("course_lib.workspace", "main", "bring work/ up to date, never overwriting your changes"),
    "fresh": ("course_lib.workspace", "fresh_main", "a fresh copy of a course notebook beside yours"),
    "progress": ("course_lib.progress", "main", "run your notebooks' visible tests and show your points"),
}


def usage() -> str:
    lines = ["usage: python -m course_lib <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, _, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[command]
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

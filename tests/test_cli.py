"""Every command-line tool is reachable from `tf-course` or `tf-course-dev` and answers --help."""

import ast
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.__main__ import COMMANDS
from course_lib.dev.__main__ import COMMANDS as DEV_COMMANDS
from course_lib.paths import REPO_ROOT

ALL = {
    **{f"tf-course {name}": target for name, target in COMMANDS.items()},
    **{f"tf-course-dev {name}": target for name, target in DEV_COMMANDS.items()},
}
NOT_TOOLS = {"course_lib/dev/kernel_limits.py"}  # the grading kernel's launcher, started by Jupyter


def modules_with_a_main() -> set[tuple[str, str]]:
    """(module, function) for every top-level `main`/`*_main` function in course_lib, dispatchers aside."""
    found = set()
    for path in sorted((REPO_ROOT / "course_lib").rglob("*.py")):
        relative = path.relative_to(REPO_ROOT)
        if (path.name == "__main__.py" and path.parent.name in ("course_lib", "dev")) or str(relative) in NOT_TOOLS:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and (node.name == "main" or node.name.endswith("_main")):
                found.add((".".join(relative.with_suffix("").parts), node.name))
    return found


def test_every_tool_is_behind_a_dispatcher():
    reachable = {(module, function) for module, function, _ in ALL.values()}
    assert modules_with_a_main() - reachable == set(), "add these to course_lib/__main__.py or dev/__main__.py"


@pytest.mark.parametrize("command", sorted(ALL))
def test_every_command_answers_help(command):
    program, name = command.split()
    dispatcher = "course_lib.__main__" if program == "tf-course" else "course_lib.dev.__main__"
    main = __import__(dispatcher, fromlist=["main"]).main
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main([name, "--help"])
    except SystemExit as stop:  # argparse's way
        code = stop.code
    assert code in (0, None)
    assert "usage:" in out.getvalue().lower() and len(out.getvalue().splitlines()) > 2


def test_the_installed_scripts_run_the_dispatchers():
    bin_dir = Path(sys.executable).parent
    for script, listed in (("tf-course", "lab"), ("tf-course-dev", "generate")):
        result = subprocess.run([str(bin_dir / script), "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and listed in result.stdout, result.stderr
    unknown = subprocess.run([str(bin_dir / "tf-course"), "no-such-command"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown command 'no-such-command'" in unknown.stderr

"""`python -m course_lib progress`: how far you are, by the visible tests of each notebook.

It runs each notebook you worked on (a copy, in a scratch folder: your file is never changed) and
shows the points of the visible tests you pass now, and for each failing exercise the first line
of its message. Hidden tests run only when the instructor grades, so the final score can be lower.
Beside the points it shows which hints you asked for (`hints.hint("ex1")` in the notebook records them
in `.hints-<notebook>.json` beside it, course_lib/hints.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.hints import read_record, record_path
from course_lib.paths import KERNEL_NAME, course_root
from course_lib.workspace import WORKSPACE


@dataclass
class ExerciseResult:
    notebook: str
    exercise: str
    earned: float
    possible: float
    message: str = ""
    hints: str = ""  # the hint levels asked for this exercise, e.g. "1, 2"


def hints_asked(path: Path) -> dict[str, list[int]]:
    """The hint levels asked per exercise in the notebook at `path` (its record file beside it)."""
    return read_record(record_path(path.parent, path.stem))


def exercise_of(grade_id: str) -> str:
    """The exercise a test cell belongs to, as the hints name it: "ex1" for "ex1-tests"."""
    return grade_id.removesuffix("-tests")


def describe_levels(levels: list[int]) -> str:
    return ", ".join(map(str, levels))


def is_test_cell(cell) -> bool:
    """An autograded test cell (nbgrader's cell kinds: code, graded, not an answer)."""
    from nbgrader.utils import is_grade, is_solution

    return cell.cell_type == "code" and bool(is_grade(cell)) and not is_solution(cell)


def started(nb: nbformat.NotebookNode) -> bool:
    """True once any answer cell differs from the released version (nbgrader's checksum)."""
    from nbgrader.utils import compute_checksum, is_solution

    return any(
        is_solution(cell)
        and "checksum" in cell.metadata["nbgrader"]
        and compute_checksum(cell) != cell.metadata["nbgrader"]["checksum"]
        for cell in nb.cells
    )


def first_failure(cell) -> str:
    """The first line a student should read: the error's name and message."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            message = (output.get("evalue") or "").strip().splitlines()
            return f"{output.get('ename')}: {message[0] if message else ''}".strip()
    return ""


def check_notebook(path: Path, kernel_name: str = KERNEL_NAME, timeout: int = 300) -> list[ExerciseResult]:
    """Execute a copy of the notebook and score its visible tests."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    name = path.stem
    asked = hints_asked(path)
    if not started(nb):
        possible = sum(float(c.metadata["nbgrader"].get("points", 0)) for c in nb.cells if is_test_cell(c))
        summary = "; ".join(f"{ex}: {describe_levels(levels)}" for ex, levels in sorted(asked.items()))
        return [ExerciseResult(name, "(all)", 0.0, possible, "not started", summary)]
    with tempfile.TemporaryDirectory(prefix="progress-") as workdir:
        NotebookClient(
            nb, kernel_name=kernel_name, timeout=timeout, allow_errors=True, resources={"metadata": {"path": workdir}}
        ).execute()
    results = []
    for cell in nb.cells:
        if is_test_cell(cell):
            meta = cell.metadata["nbgrader"]
            failure = first_failure(cell)
            points = float(meta.get("points", 0))
            hints = describe_levels(asked.get(exercise_of(meta["grade_id"]), []))
            results.append(ExerciseResult(name, meta["grade_id"], 0.0 if failure else points, points, failure, hints))
    return results


def saved_results(path: Path) -> list[ExerciseResult]:
    """Each exercise as the saved notebook shows it: the outputs of the test cells the student ran.

    Nothing is executed: this is what `show()` reports from inside the notebook, in a second. A test
    cell that ran without an error earned its visible points; one never run says so.
    """
    nb = nbformat.read(path, as_version=4)
    asked = hints_asked(path)
    results = []
    for cell in nb.cells:
        if is_test_cell(cell):
            meta = cell.metadata["nbgrader"]
            points = float(meta.get("points", 0))
            ran = cell.get("execution_count") is not None
            failure = first_failure(cell) if ran else "not run yet (or not saved since it ran)"
            hints = describe_levels(asked.get(exercise_of(meta["grade_id"]), []))
            results.append(
                ExerciseResult(path.stem, meta["grade_id"], 0.0 if failure else points, points, failure, hints)
            )
    return results


def current_notebook(folder: Path | None = None) -> Path | None:
    """The notebook this kernel runs: Jupyter Server names it in JPY_SESSION_NAME; else <folder>/<folder>.ipynb."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):
        candidate = Path(session)
        if not candidate.is_absolute():
            candidate = (folder or Path.cwd()) / candidate.name
        if candidate.is_file():
            return candidate
    folder = folder or Path.cwd()
    candidate = folder / f"{folder.name}.ipynb"
    return candidate if candidate.is_file() else None


def show(notebook: str | os.PathLike[str] | None = None) -> None:
    """In a notebook: which exercises pass and which hints you asked for, from your last save.

    Save first (Ctrl+S): the table reads the saved file. `make progress` runs your notebooks afresh.
    """
    path = Path(notebook) if notebook else current_notebook()
    if path is None or not path.is_file():
        print(f"no saved notebook found in {Path.cwd()}: pass its path, e.g. show('03-model-formats.ipynb')")
        return
    results = saved_results(path)
    table = format_table(results).replace("first failing message", "first failing message (from your last save)")
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(table))
            return
    except ImportError:  # plain Python: print it
        pass
    print(table)


def format_table(results: list[ExerciseResult]) -> str:
    lines = ["| notebook | exercise | points | first failing message | hints asked |", "|---|---|---:|---|---|"]
    lines.extend(
        f"| {r.notebook} | {r.exercise} | {r.earned:g} / {r.possible:g} | {r.message[:100]} | {r.hints or '-'} |"
        for r in results
    )
    earned, possible = sum(r.earned for r in results), sum(r.possible for r in results)
    lines.append(
        f"\nVisible tests passed: {earned:g} of {possible:g} points (hidden tests run when your instructor grades)."
    )
    return "\n".join(lines)


def default_notebooks() -> list[Path]:
    """Your notebooks: work/<id>/<id>.ipynb (not the fresh or updated copies beside them)."""
    return sorted(p for p in (course_root() / WORKSPACE).glob("*/*.ipynb") if p.stem == p.parent.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib progress", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: your notebooks in work/")
    parser.add_argument("--kernel", default=KERNEL_NAME)
    args = parser.parse_args(argv)
    paths = args.notebooks or default_notebooks()
    if not paths:
        print(f"no notebooks in {course_root() / WORKSPACE} yet: `make lab` makes your copies there")
        return 1
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    results = []
    for path in paths:
        print(f"checking {path.name} ...", file=sys.stderr, flush=True)
        try:
            results.extend(check_notebook(path, args.kernel))
        except Exception as error:  # one broken notebook must not hide the others
            results.append(ExerciseResult(path.stem, "(notebook)", 0.0, 0.0, f"could not run: {error}"[:200]))
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What costs points when nbgrader grades a test cell: errors only, never what the code prints.

nbgrader zeroes a test cell with *any* stderr output (`nbgrader.utils.determine_grade`,
nbgrader#1904), and TensorFlow writes to stderr on its own: absl/C++ log lines on the first op of a
process, the first XLA compile and GPU start-up (`I0000 00:00:1796150002.920938   29184 service.cc:153]
XLA service ...`), TF-logger lines, Keras `UserWarning`s; so do `logging`, tqdm bars and
`print(..., file=sys.stderr)`. Matching those texts with a pattern (`IgnorePattern`) misses every
format nobody wrote down yet: the course's first pattern expected `HH:MM:SS.micros` where TF 2.21
writes epoch seconds, and zeroed perfect answers.

So the grade ignores stderr altogether, in two places that cover every way nbgrader runs a notebook:

- `nbgrader autograde` (make grade, the hub's grading): `SetAsideStderr` takes the place of
  IgnorePattern in `Autograde.autograde_preprocessors` (nbgrader_config.py). Right after the
  notebook ran, it turns the stderr outputs of every autograded test cell into one plain-text note
  marked `course.stderr`, which nbgrader does not score. The text stays in the graded notebook and
  the feedback; only errors (a failing assert, an exception, a timeout, a MemoryError) cost points.
  It does not depend on the kernel, so a grader that overrides `Execute.kernel_name` (a GPU
  machine) grades the same way.
- `nbgrader validate` and the Validate button: nbgrader's Validator takes no extra preprocessors,
  so the grading kernel does it (course_lib/dev/kernel_limits.py): started under validation, it
  sends what is written to stderr (Python or file descriptor 2) as stdout, which validation does
  not count as a failure.

Students' own kernels are untouched: they see every warning and log line while they work.

`lost_points_reason` names, in one line, why a test cell did not get its points (the feedback
shows it, see course_lib/dev/feedback.py).
"""

from __future__ import annotations

from nbformat import NotebookNode
from nbgrader.preprocessors import IgnorePattern, NbGraderPreprocessor

from course_lib.progress import is_test_cell

MARK = "course"  # output metadata key of the outputs set aside here
STDERR_HEADER = "stderr (shown for information; it does not change the score):\n"
MAX_LINES = 200

MEMORY_ERRORS = {"MemoryError", "ResourceExhaustedError", "OutOfMemoryError"}
TIMEOUT_ERRORS = {"CellTimeoutError", "KeyboardInterrupt", "TimeoutError"}


def _as_terminal_shows(text: str) -> str:
    """Progress bars rewrite a line with carriage returns: keep what a terminal ends up showing."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def stderr_note(text: str) -> NotebookNode:
    """A display output holding stderr text: nbgrader scores stream and error outputs, not this."""
    lines = _as_terminal_shows(text).splitlines()
    if len(lines) > MAX_LINES:
        lines = [f"... ({len(lines) - MAX_LINES} earlier lines left out)", *lines[-MAX_LINES:]]
    return NotebookNode(
        output_type="display_data",
        data={"text/plain": STDERR_HEADER + "\n".join(lines)},
        metadata={MARK: {"stderr": True}},
    )


def set_aside_stderr(notebook: NotebookNode) -> NotebookNode:
    """Move the stderr outputs of every test cell into one unscored note, where the first one was."""
    for cell in notebook.cells:
        if not is_test_cell(cell):
            continue
        outputs, texts, position = [], [], None
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                texts.append(output.get("text", ""))
                position = len(outputs) if position is None else position
            else:
                outputs.append(output)
        if texts and position is not None:  # position is set with the first stderr text
            outputs.insert(position, stderr_note("".join(texts)))
            cell.outputs = outputs
    return notebook


class SetAsideStderr(NbGraderPreprocessor):
    """Autograde preprocessor: stderr of test cells becomes an unscored note (see the module doc)."""

    def preprocess(self, nb, resources):
        return set_aside_stderr(nb), resources


def autograde_preprocessors(default: list) -> list:
    """nbgrader's autograde pipeline with SetAsideStderr in the place of IgnorePattern."""
    if IgnorePattern not in default:
        raise RuntimeError(
            "nbgrader's autograde pipeline has no IgnorePattern any more: "
            "put SetAsideStderr right after Execute in nbgrader_config.py"
        )
    return [SetAsideStderr if step is IgnorePattern else step for step in default]


def set_aside_texts(cell: NotebookNode) -> str:
    """The stderr text set aside in a cell (without the header), '' when there was none."""
    return "".join(
        o["data"]["text/plain"].removeprefix(STDERR_HEADER)
        for o in cell.get("outputs", [])
        if o.get("metadata", {}).get(MARK, {}).get("stderr")
    )


def _first_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def lost_points_reason(cell: NotebookNode) -> str:
    """Why a test cell scored less than its points, in one line (failed check, exception, ...)."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    names = {o.get("ename", "") for o in errors}
    if names & TIMEOUT_ERRORS:
        return "timeout: the cell ran past the grading time limit and was interrupted"
    memory = [o for o in errors if o.get("ename") in MEMORY_ERRORS]
    if memory:
        return f"killed for memory: {memory[0]['ename']} (the grading kernel's memory limit stopped the cell)"
    if errors:
        error = errors[0]
        message = f"{error.get('ename', 'Error')}: {_first_line(error.get('evalue', ''))}".rstrip(": ")
        kind = "failed check" if error.get("ename") == "AssertionError" else "exception"
        return f"{kind}: {message[:200]}"
    if any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in cell.get("outputs", [])):
        return "output on stderr (graded before stderr was set aside)"
    if any(o.get("output_type") == "execute_result" for o in cell.get("outputs", [])):
        return "partial credit: the test cell's result gave part of the points"
    if cell.get("execution_count") is None:
        return "not run: the notebook stopped before this cell (the kernel died or was killed)"
    return "no error in this cell: see the instructor's comment"

"""Feedback that never shows hidden tests, and says why a test cell lost its points.

nbgrader's feedback HTML shows every cell as graded, hidden tests included (nbgrader#917), and a
failing hidden assert's traceback quotes the hidden line. This preprocessor, added to
GenerateFeedback in nbgrader_config.py, removes the hidden region from each test cell and cuts
error tracebacks in those cells down to the error's name and message. `ExplainLostPoints` puts one
line above the outputs of every test cell that scored less than its points: the cause (failed check,
exception, timeout, killed for memory), never a bare 0.
"""

from __future__ import annotations

import html
import re

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

from course_lib.dev.scoring import MARK, is_test_cell, lost_points_reason

HIDDEN_REGION = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.DOTALL)
NOTE = "# (hidden tests ran here; they are not shown)\n"


class HideHiddenTests(Preprocessor):
    """Strip hidden test code and tracebacks that would quote it."""

    # nbconvert preprocessors are off unless enabled; nbgrader registers this one by class.
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or "BEGIN HIDDEN TESTS" not in cell.source:
            return cell, resources
        cell.source = HIDDEN_REGION.sub(NOTE, cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


class ExplainLostPoints(Preprocessor):
    """One line on each test cell below full marks: why (needs GetGrades before it)."""

    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        score, points = meta.get("score"), meta.get("points")
        if not is_test_cell(cell) or score is None or points is None or float(score) >= float(points):
            return cell, resources
        line = f"Scored {float(score):g} of {float(points):g}: {lost_points_reason(cell)}"
        note = NotebookNode(
            output_type="display_data",
            metadata={MARK: {"reason": True}},
            data={
                "text/plain": line,
                "text/html": f'<p class="course-reason" style="color:#a94442"><b>{html.escape(line)}</b></p>',
            },
        )
        cell.outputs = [note, *cell.get("outputs", [])]
        return cell, resources

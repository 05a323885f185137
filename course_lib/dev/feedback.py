"""Feedback that never shows hidden tests.

nbgrader's feedback HTML shows every cell as graded, hidden tests included (nbgrader#917), and a
failing hidden assert's traceback quotes the hidden line. This preprocessor, added to
GenerateFeedback in nbgrader_config.py, removes the hidden region from each test cell and cuts
error tracebacks in those cells down to the error's name and message.
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

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

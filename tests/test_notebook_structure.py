"""Every solution notebook follows the anatomy in docs/authoring.md (checked without running it)."""

import ast

import nbformat
import pytest

from course_lib.dev.notebooks import is_reference_cell
from course_lib.paths import KERNEL_NAME, REPO_ROOT, assignment_ids

NOTEBOOKS = [REPO_ROOT / "solutions" / a / f"{a}.ipynb" for a in assignment_ids()]


def load(path):
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_only_literal_assignments(path):
    """papermill injects overrides after the parameters cell: derived values there would ignore them."""
    cells = [c for c in load(path).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one code cell must be tagged `parameters`"
    tree = ast.parse(cells[0].source)
    for statement in tree.body:
        assert isinstance(statement, ast.Assign | ast.AnnAssign), f"not an assignment: {ast.unparse(statement)}"
        assert statement.value is not None, f"a parameter without a value: {ast.unparse(statement)}"
        ast.literal_eval(statement.value)  # raises for anything derived from another name
    names = {target.id for s in tree.body for target in getattr(s, "targets", [getattr(s, "target", None)])}
    assert "QUICK" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_a_title_and_uses_the_course_kernel(path):
    nb = load(path)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# ")
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_test_cells_do_not_end_in_an_expression(path):
    """nbgrader reads the last value of a test cell as a partial score."""
    for cell in load(path).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            body = ast.parse(cell.source).body
            assert (body and not isinstance(body[-1], ast.Expr)) or _is_call(body[-1]), (
                f"{meta['grade_id']}: end the test cell with an assert or a call, not a bare value"
            )


def _is_call(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_deterministic_reference_cells(path):
    assert any(is_reference_cell(c) for c in load(path).cells), "mark at least one deterministic cell for nbval"

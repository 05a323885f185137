"""Notebook hygiene: strip outputs, keep nbval reference outputs, and refresh those references.

Outputs stay out of git except on cells marked `# NBVAL_CHECK_OUTPUT` in solutions/: nbval
compares those, and it needs both their outputs and an execution_count (a cell without a count is
"unrun" and compared to nothing, so a stripped notebook would pass vacuously).

    python -m course_lib.dev.notebooks strip [NOTEBOOK ...]     # default: every course notebook
    python -m course_lib.dev.notebooks refresh NOTEBOOK ...     # re-execute, store reference outputs
    python -m course_lib.dev.notebooks check                    # exit 1 if any notebook is unclean
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

from course_lib.paths import KERNEL_DISPLAY_NAME, KERNEL_NAME, REPO_ROOT

REFERENCE_MARK = "# NBVAL_CHECK_OUTPUT"
KERNELSPEC = {"name": KERNEL_NAME, "display_name": KERNEL_DISPLAY_NAME, "language": "python"}
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def course_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """Every solution and student notebook of the course, sorted."""
    return sorted(
        p
        for folder in ("solutions", "notebooks")
        for p in (root / folder).glob("*/*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


def is_reference_cell(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and REFERENCE_MARK in cell.source


def strip_notebook(nb: nbformat.NotebookNode, keep_references: bool = True) -> nbformat.NotebookNode:
    """Remove outputs, counts and volatile metadata; keep reference cells' outputs if asked.

    Why not nbstripout's `strip_output` (nbstripout 0.9.1 is pinned): it keeps or drops execution
    counts for the whole notebook (`keep_count`), but nbval needs the count on each
    `# NBVAL_CHECK_OUTPUT` cell and on no other cell; it picks the cells whose outputs stay by a
    `keep_output` metadata flag, not by the marker in the source the course uses; and unless told
    `keep_id` it renumbers cell ids. Wrapping it would take more code than these few lines.
    """
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if keep_references and is_reference_cell(cell) and cell.outputs:
            continue
        cell.outputs = []
        cell.execution_count = None
    return nb


def problems_in(path: Path) -> list[str]:
    """What is unclean in one notebook: outputs that should not be there, references without counts."""
    nb = nbformat.read(path, as_version=4)
    is_solution = path.parent.parent.name == "solutions"
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.outputs and not (is_solution and is_reference_cell(cell)):
            problems.append(f"{path}: cell {index} has outputs (strip them)")
        if is_solution and is_reference_cell(cell):
            if not cell.outputs:
                problems.append(f"{path}: reference cell {index} has no stored output (refresh it)")
            elif cell.execution_count is None:
                problems.append(f"{path}: reference cell {index} has outputs but no execution_count")
    return problems


def refresh_references(path: Path, kernel_name: str = KERNEL_NAME, timeout: int = 600) -> int:
    """Execute the notebook in a scratch folder; store outputs of reference cells only."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    executed = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as workdir:
        NotebookClient(
            executed, kernel_name=kernel_name, timeout=timeout, resources={"metadata": {"path": workdir}}
        ).execute()
    count = 0
    for cell, ran in zip(nb.cells, executed.cells, strict=True):
        if is_reference_cell(cell):
            cell.outputs = [o for o in ran.outputs if not (o.output_type == "stream" and o.name == "stderr")]
            cell.execution_count = ran.execution_count
            count += 1
    nbformat.write(strip_notebook(nb), path)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.notebooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["strip", "refresh", "check"])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or course_notebooks()
    if args.command == "check":
        problems = [problem for path in paths for problem in problems_in(path)]
        print("\n".join(problems) or f"{len(paths)} notebooks clean")
        return 1 if problems else 0
    for path in paths:
        if args.command == "refresh":
            print(f"{path}: {refresh_references(path)} reference cell(s) refreshed")
        else:
            keep = path.parent.parent.name == "solutions"
            nbformat.write(strip_notebook(nbformat.read(path, as_version=4), keep_references=keep), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

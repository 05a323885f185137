"""Run course notebooks through papermill and summarise where the time went.

CI on CPU runs them with their defaults (QUICK=True); GPU CI runs the same command with
`-p QUICK False`. Executed copies go outside the repository (outputs never land in git), with a
summary of per-cell timings as JSON and Markdown.

    python -m course_lib.dev.run_notebooks [ID ...] [-p NAME VALUE ...] [--out DIR] [--kernel NAME]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from course_lib.paths import KERNEL_NAME, REPO_ROOT, SOLUTIONS, assignment_ids


@dataclass
class CellTiming:
    index: int
    seconds: float
    first_line: str


@dataclass
class NotebookRun:
    """What one papermill run of a notebook did."""

    assignment: str
    output: str
    ok: bool
    seconds: float
    error: str = ""
    kernel_peak_rss_mib: float | None = None
    slowest_cells: list[CellTiming] = field(default_factory=list)


@contextmanager
def peak_child_rss(interval: float = 0.1):
    """Track the largest resident memory of any child process (the kernel) while the block runs.

    Binder allows about 2 GB: this is the number that must stay under it. Yields a dict whose
    "bytes" entry holds the peak so far.
    """
    import psutil

    peak = {"bytes": 0}
    stop = threading.Event()

    def poll() -> None:
        me = psutil.Process()
        while not stop.is_set():
            for child in me.children(recursive=True):
                with suppress(psutil.Error):
                    peak["bytes"] = max(peak["bytes"], child.memory_info().rss)
            stop.wait(interval)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield peak
    finally:
        stop.set()
        watcher.join()


def parse_value(text: str):
    """`-p QUICK False` → False, `-p BATCH 8` → 8; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def cell_timings(notebook_path: Path, top: int = 5) -> list[CellTiming]:
    """The slowest code cells of an executed notebook, from papermill's cell metadata."""
    nb = nbformat.read(notebook_path, as_version=4)
    timings = [
        CellTiming(
            index,
            float(cell.metadata.get("papermill", {}).get("duration") or 0.0),
            (cell.source.strip().splitlines() or [""])[0][:80],
        )
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
    ]
    return sorted(timings, key=lambda t: t.seconds, reverse=True)[:top]


def run_notebook(
    assignment: str,
    out_dir: Path,
    parameters: dict,
    kernel: str = KERNEL_NAME,
    source_root: Path = REPO_ROOT / SOLUTIONS,
) -> NotebookRun:
    """Execute one notebook in a scratch working directory; never raises for a failing notebook."""
    import papermill

    source = source_root / assignment / f"{assignment}.ipynb"
    output = out_dir / f"{assignment}.ipynb"
    start = time.perf_counter()
    error = ""
    with tempfile.TemporaryDirectory(prefix=f"run-{assignment}-") as workdir, peak_child_rss() as peak:
        try:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=parameters,
                kernel_name=kernel,
                cwd=workdir,
                progress_bar=False,
                log_output=False,
            )
        except Exception as exc:  # a failing notebook is a result, not a crash of the runner
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]
    seconds = time.perf_counter() - start
    timings = cell_timings(output) if output.exists() else []
    return NotebookRun(
        assignment, str(output), not error, round(seconds, 2), error, round(peak["bytes"] / 2**20, 1) or None, timings
    )


def write_summary(runs: list[NotebookRun], out_dir: Path, parameters: dict) -> tuple[Path, Path]:
    """summary.json for machines, summary.md for people."""
    json_path, md_path = out_dir / "summary.json", out_dir / "summary.md"
    json_path.write_text(json.dumps({"parameters": parameters, "runs": [asdict(r) for r in runs]}, indent=2))
    lines = [
        f"# Notebook run ({', '.join(f'{k}={v}' for k, v in parameters.items()) or 'defaults'})",
        "",
        "| notebook | status | seconds | kernel peak RSS (MiB) | slowest cell (s) |",
        "|---|---|---:|---:|---|",
    ]
    for run in runs:
        slowest = run.slowest_cells[0] if run.slowest_cells else None
        slow_text = f"{slowest.seconds:.1f} `{slowest.first_line}`" if slowest else "-"
        lines.append(
            f"| {run.assignment} | {'ok' if run.ok else 'FAILED'} | {run.seconds:.1f} | "
            f"{run.kernel_peak_rss_mib or '-'} | {slow_text} |"
        )
    lines.append(f"\nTotal: {sum(r.seconds for r in runs):.1f} s")
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.run_notebooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("assignments", nargs="*", help="notebook ids (default: all)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--out", type=Path, default=None, help="folder for executed copies (default: a temp dir)")
    parser.add_argument("--kernel", default=KERNEL_NAME)
    args = parser.parse_args(argv)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="course-notebooks-"))
    if out_dir.resolve().is_relative_to(REPO_ROOT) and not out_dir.resolve().is_relative_to(REPO_ROOT / "results"):
        parser.error("--out must be outside the repository (or under results/): executed notebooks carry outputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = {name: parse_value(value) for name, value in args.parameter}
    runs = []
    for assignment in args.assignments or assignment_ids():
        run = run_notebook(assignment, out_dir, parameters, args.kernel)
        print(
            f"{assignment}: {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s"
            + (f"\n  {run.error.splitlines()[-1]}" if run.error else ""),
            flush=True,
        )
        runs.append(run)
    _, md_path = write_summary(runs, out_dir, parameters)
    print(f"executed notebooks and summary in {out_dir} ({md_path.name})")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""How many wrong answers the graded tests catch: mutation testing of the solution notebooks.

The notebook runs top to bottom in the course kernel, as nbgrader would run it. Before each answer
cell runs, every mutant of its solution (course_lib.dev.mutations) runs in its place, followed by the
exercise's test cells; a mutant is *killed* when a test cell raises (that is what costs a student the
points), and *survives* when every test passes. Then the real answer runs and the notebook goes on.
A mutant that hangs past the timeout counts as killed (a student would get no points either), and
the kernel is restarted and replayed up to that point.

    tf-course-dev mutants solutions/03-model-formats/03-model-formats.ipynb
    make mutants   # every notebook: docs/mutation-scores.json and the tables in docs/benchmarks.md

The record holds, per notebook, the score, which exercises call TensorFlow, and a digest of the
exercise cells, so a test can tell when it is stale (an exercise changed and nobody re-ran this).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import queue
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager

from course_lib.dev.grading import exercises
from course_lib.dev.mutations import Mutant, mutants, uses_tensorflow
from course_lib.paths import KERNEL_NAME, SOLUTIONS, assignment_ids, course_root

TARGET = 0.85  # issue 16: at least 85% of the mutants killed in every notebook


@dataclass
class ExerciseScore:
    """The mutants of one exercise and which of them the tests let through."""

    exercise: str
    points: float
    uses_tensorflow: bool
    title: str = ""
    mutants: int = 0
    killed: int = 0
    survivors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.killed / self.mutants if self.mutants else 1.0


def exercise_digest(notebook: nbformat.NotebookNode) -> str:
    """A digest of the answer and test cells: what the score depends on (prose edits leave it alone)."""
    graded = [c.source for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id")]
    return hashlib.sha256("\n\0".join(graded).encode()).hexdigest()[:16]


class Kernel:
    """The course kernel, running cells one at a time and saying whether each raised."""

    def __init__(self, kernel_name: str, cwd: Path, timeout: float) -> None:
        self.timeout = timeout
        self.manager = KernelManager(kernel_name=kernel_name)
        self.manager.start_kernel(cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str) -> str | None:
        """Run one cell; None when it succeeded, else the error's first line ('timeout' when it hung)."""
        try:
            reply = self.client.execute_interactive(code, timeout=self.timeout, output_hook=lambda _msg: None)
        except (TimeoutError, queue.Empty):
            return "timeout"
        content = reply["content"]
        if content["status"] == "ok":
            return None
        return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".splitlines()[0][:200]

    def restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=120)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def _exercise_title(markdown: str) -> str:
    """The heading of an exercise's task ("Exercise 2 (2 points): latency statistics"), or ""."""
    for line in markdown.splitlines():
        heading = line.lstrip("#").strip()
        if line.startswith("#") and heading.lower().startswith("exercise"):
            return heading
    return ""


def _grade_id(cell: nbformat.NotebookNode) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def score_notebook(path: Path, kernel_name: str = KERNEL_NAME, timeout: float = 60.0) -> list[ExerciseScore]:
    """Run the notebook once, trying every mutant of every answer cell against its test cells."""
    notebook = nbformat.read(path, as_version=4)
    tests_of = {e.answer_id: e for e in exercises(notebook)}
    cell_of = {_grade_id(c): c for c in notebook.cells if _grade_id(c)}
    scores: list[ExerciseScore] = []
    replay: list[str] = []  # the cells run so far, to rebuild the kernel's state after a hang
    with tempfile.TemporaryDirectory(prefix="mutants-") as cwd:
        kernel = Kernel(kernel_name, Path(cwd), timeout)
        try:
            title = ""
            for cell in notebook.cells:
                if cell.cell_type == "markdown":
                    title = _exercise_title(cell.source) or title
                    continue
                exercise = tests_of.get(_grade_id(cell))
                if exercise is not None and exercise.points > 0:
                    scores.append(_try_mutants(kernel, cell.source, exercise, cell_of, replay))
                    scores[-1].title = title
                kernel.run(cell.source)
                replay.append(cell.source)
        finally:
            kernel.close()
    return scores


def _try_mutants(kernel: Kernel, answer: str, exercise, cell_of, replay: list[str]) -> ExerciseScore:
    name = exercise.answer_id.removesuffix("-answer")
    score = ExerciseScore(name, exercise.points, uses_tensorflow(answer))
    try:
        found: list[Mutant] = mutants(answer)
    except SyntaxError as error:
        score.survivors.append(f"cannot parse the answer cell: {error}")
        return score
    for mutant in found:
        failure = kernel.run(mutant.source)
        if failure is None:
            for test_id in exercise.test_ids:
                failure = kernel.run(cell_of[test_id].source)
                if failure is not None:
                    break
        score.mutants += 1
        if failure is None:
            score.survivors.append(f"line {mutant.line}: {mutant.change}")
        else:
            score.killed += 1
        if failure == "timeout":
            kernel.restart()
            for source in replay:
                kernel.run(source)
    return score


def format_report(notebook: str, scores: list[ExerciseScore]) -> str:
    killed, total = sum(s.killed for s in scores), sum(s.mutants for s in scores)
    lines = [f"{notebook}: {killed}/{total} mutants killed ({killed / max(total, 1):.0%})"]
    for s in scores:
        tf_mark = "TF" if s.uses_tensorflow else "  "
        lines.append(f"  {s.exercise:5} {tf_mark} {s.killed:3}/{s.mutants:<3} ({s.score:.0%})")
        lines += [f"        survived: {survivor}" for survivor in s.survivors]
    return "\n".join(lines)


def record_entry(path: Path, scores: list[ExerciseScore], seconds: float) -> dict:
    killed, total = sum(s.killed for s in scores), sum(s.mutants for s in scores)
    return {
        "digest": exercise_digest(nbformat.read(path, as_version=4)),
        "killed": killed,
        "mutants": total,
        "score": round(killed / max(total, 1), 3),
        "exercises": len(scores),
        "use_tensorflow": sum(s.uses_tensorflow for s in scores),
        "seconds": round(seconds, 1),
        "by_exercise": [{**asdict(s), "score": round(s.score, 3)} for s in scores],
    }


BEGIN_TABLE, END_TABLE = "<!-- mutation-scores: begin (make mutants writes this) -->", "<!-- mutation-scores: end -->"


def markdown_tables(record: dict) -> str:
    """The record as docs/benchmarks.md shows it: per notebook, then per exercise."""
    lines = [
        "| notebook | mutants killed | score | exercises calling TensorFlow |",
        "|---|---:|---:|---:|",
    ]
    for name, entry in sorted(record.items()):
        lines.append(
            f"| {name} | {entry['killed']} / {entry['mutants']} | {entry['score']:.0%} | "
            f"{entry['use_tensorflow']} of {entry['exercises']} |"
        )
    exercises_total = sum(e["exercises"] for e in record.values())
    tensorflow_total = sum(e["use_tensorflow"] for e in record.values())
    killed, total = sum(e["killed"] for e in record.values()), sum(e["mutants"] for e in record.values())
    lines.append(
        f"| **all** | {killed} / {total} | {killed / max(total, 1):.0%} | "
        f"{tensorflow_total} of {exercises_total} ({tensorflow_total / max(exercises_total, 1):.0%}) |"
    )
    lines += ["", "| notebook | exercise | calls TensorFlow | mutants killed |", "|---|---|:---:|---:|"]
    for name, entry in sorted(record.items()):
        for row in entry["by_exercise"]:
            title = row.get("title") or row["exercise"]
            tensorflow = "yes" if row["uses_tensorflow"] else "no"
            lines.append(f"| {name} | {title} | {tensorflow} | {row['killed']} / {row['mutants']} |")
    return "\n".join(lines)


def write_tables(markdown_path: Path, record: dict) -> None:
    """Replace the generated section of docs/benchmarks.md (between its markers) with the record's tables."""
    text = markdown_path.read_text()
    if BEGIN_TABLE not in text or END_TABLE not in text:
        raise SystemExit(f"{markdown_path} has no '{BEGIN_TABLE}' ... '{END_TABLE}' section to write into")
    head, rest = text.split(BEGIN_TABLE, 1)
    _, tail = rest.split(END_TABLE, 1)
    markdown_path.write_text(f"{head}{BEGIN_TABLE}\n{markdown_tables(record)}\n{END_TABLE}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tf-course-dev mutants", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default with --all: every one)")
    parser.add_argument("--all", action="store_true", help="every notebook in solutions/")
    parser.add_argument("--record", type=Path, help="update this JSON record with the notebooks' results")
    parser.add_argument("--tables", type=Path, help="also write the record's tables into this markdown file")
    parser.add_argument("--kernel", default=KERNEL_NAME)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a cell counts as hung")
    args = parser.parse_args(argv)
    paths = list(args.notebooks)
    if args.all:
        paths += [course_root() / SOLUTIONS / a / f"{a}.ipynb" for a in assignment_ids()]
    if not paths:
        parser.error("name a solution notebook, or pass --all")
    record = json.loads(args.record.read_text()) if args.record and args.record.exists() else {}
    below = []
    for path in paths:
        if not path.is_file():
            parser.error(f"no such notebook: {path}")
        started = time.perf_counter()
        scores = score_notebook(path, args.kernel, args.timeout)
        print(format_report(path.stem, scores), flush=True)
        entry = record_entry(path, scores, time.perf_counter() - started)
        record[path.stem] = entry
        if entry["score"] < TARGET:
            below.append(path.stem)
        if args.record:
            args.record.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n")
        if args.tables:
            write_tables(args.tables, record)
    if below:
        print(f"below the {TARGET:.0%} target: {', '.join(below)}", file=sys.stderr)
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())

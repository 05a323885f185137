"""Run the notebooks under Binder's limits (2 GB, 1 CPU) and report whether each one fits.

Each notebook runs with its default parameters through papermill, in its own process, inside a
cgroup with the memory and CPU limits of a Binder container (`make binder-check`); the report
records what course_lib.environment read inside (the notebooks size threads and batches from it),
each notebook's time, its kernel's peak RSS, the cgroup's peak (page cache included, which the
kernel reclaims before it kills) and any OOM kill. Inside a real container with the limits
already set (Binder itself, `docker run --memory 2g --cpus 1`), `--in-place` uses its cgroup.

    python -m course_lib.dev.binder_check [ID ...] [--memory-gib 2] [--cpus 1] [--out DIR] [--in-place]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from course_lib.dev.cgroup_sandbox import Sandbox, Usage
from course_lib.errors import CourseError
from course_lib.paths import assignment_ids

PROBE = "import json; from course_lib import cgroups; print(json.dumps(cgroups.read_cgroup_limits()))"


@dataclass
class NotebookFit:
    """One notebook under the limits."""

    assignment: str
    ok: bool
    seconds: float | None
    kernel_peak_rss_mib: float | None
    cgroup_peak_mib: float | None
    oom_kills: int
    error: str
    memory_warnings: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.ok and self.oom_kills == 0


def seen_limits(sandbox: Sandbox) -> tuple[float | None, int | None]:
    """The limits course_lib.environment reads from inside the sandbox: the ones notebooks act on."""
    cpus, memory = sandbox.python_json(PROBE)
    return cpus, memory


def check_notebook(sandbox: Sandbox, assignment: str, out_dir: Path, parameters: list[tuple[str, str]]) -> NotebookFit:
    """Run one notebook in the sandbox; a killed or failing run is a result, never a crash."""
    command = [sys.executable, "-m", "course_lib.dev.run_notebooks", assignment, "--out", str(out_dir)]
    for name, value in parameters:
        command += ["-p", name, value]
    log = out_dir / f"{assignment}.log"
    out_dir.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream:
        returncode, usage = sandbox.run(command, stdout=stream, stderr=subprocess.STDOUT)
    summary_file = out_dir / "summary.json"
    run = json.loads(summary_file.read_text())["runs"][0] if summary_file.exists() else {}
    summary_file.unlink(missing_ok=True)
    error = run.get("error", "") or ("" if returncode == 0 else f"runner exited with {returncode}: see {log}")
    return NotebookFit(
        assignment,
        returncode == 0 and bool(run.get("ok")),
        run.get("seconds"),
        run.get("kernel_peak_rss_mib"),
        _mib(usage),
        usage.oom_kills,
        error.strip()[-500:],
        memory_warnings(out_dir / f"{assignment}.ipynb"),
    )


def memory_warnings(executed: Path) -> list[str]:
    """What the notebook left out to fit (memory.fit_batch_sizes' warnings), from its saved outputs."""
    if not executed.exists():
        return []
    notebook = json.loads(executed.read_text())
    texts = ("".join(output.get("text", "")) for cell in notebook["cells"] for output in cell.get("outputs", []))
    return [
        line.removeprefix("WARNING: ")
        for text in texts
        for line in text.splitlines()
        if line.startswith(("WARNING: batch sizes", "WARNING: even batch"))
    ]


def _mib(usage: Usage) -> float | None:
    return None if usage.peak_bytes is None else round(usage.peak_bytes / 2**20, 1)


def write_report(out_dir: Path, requested: dict | None, seen: tuple, fits: list[NotebookFit]) -> Path:
    """binder-check.json for machines, binder-check.md for people."""
    cpus, memory = seen
    (out_dir / "binder-check.json").write_text(
        json.dumps(
            {
                "requested": requested,
                "seen_by_course_lib": {"cpus": cpus, "memory_bytes": memory},
                "notebooks": [asdict(fit) | {"fits": fit.fits} for fit in fits],
            },
            indent=2,
        )
    )
    where = "in a cgroup made for the check" if requested else "in this container's own cgroup"
    lines = [
        (
            f"# Notebooks under a memory limit of {f'{memory / 2**30:.2f} GiB' if memory else 'none'} and "
            f"{f'{cpus:g} CPU' if cpus else 'no CPU quota'} ({where})"
        ),
        "",
        (
            "The limits are the ones course_lib.environment read inside, which the notebooks size threads and "
            "batches from."
        ),
    ]
    if requested and (cpus, memory) != (requested["cpus"], requested["memory_bytes"]):
        lines += [
            "",
            (
                f"WARNING: the check set {requested}, but course_lib read {seen}: notebooks would not see "
                "the container's real limits."
            ),
        ]
    lines += [
        "",
        "| notebook | fits | seconds | kernel peak RSS (MiB) | cgroup peak (MiB) | OOM kills |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for fit in fits:
        lines.append(
            f"| {fit.assignment} | {'yes' if fit.fits else 'NO'} | {fit.seconds or '-'} | "
            f"{fit.kernel_peak_rss_mib or '-'} | {fit.cgroup_peak_mib or '-'} | {fit.oom_kills} |"
        )
    lines += [
        "",
        (
            "The cgroup peak includes page cache, which the kernel reclaims before the OOM killer acts, and "
            "leaves out pages of files that were cached before the check (TensorFlow's libraries are charged to "
            "whoever read them first); a fresh container is charged for those too, so the kernel's RSS is the "
            "safer figure."
        ),
    ]
    lines += [f"\n{fit.assignment}: {fit.error}" for fit in fits if fit.error]
    lines += [f"\n{fit.assignment} left out to fit: {warning}" for fit in fits for warning in fit.memory_warnings]
    path = out_dir / "binder-check.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.binder_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("assignments", nargs="*", help="notebook ids (default: all)")
    parser.add_argument("--memory-gib", type=float, default=2.0, help="memory limit (Binder: about 2 GB)")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPU quota (Binder: 1)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the report (default: a temp dir)")
    parser.add_argument("--in-place", action="store_true", help="use this container's own cgroup and limits")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="binder-check-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        memory_bytes = int(args.memory_gib * 2**30)
        sandbox = Sandbox.current() if args.in_place else Sandbox.create(memory_bytes, args.cpus)
    except CourseError as error:
        print(f"binder-check: {error}", file=sys.stderr)
        return 2
    with sandbox:
        seen = seen_limits(sandbox)
        fits = []
        for assignment in args.assignments or assignment_ids():
            fit = check_notebook(sandbox, assignment, out_dir, args.parameter)
            print(
                f"{assignment}: {'fits' if fit.fits else 'DOES NOT FIT'} ({fit.seconds or '-'} s, kernel "
                f"{fit.kernel_peak_rss_mib or '-'} MiB, cgroup peak {fit.cgroup_peak_mib or '-'} MiB, "
                f"{fit.oom_kills} OOM kills)",
                flush=True,
            )
            fits.append(fit)
    requested = None if args.in_place else {"cpus": args.cpus, "memory_bytes": memory_bytes}
    report = write_report(out_dir, requested, seen, fits)
    print(f"report: {report}")
    return 0 if all(fit.fits for fit in fits) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The course on Kubernetes, sized from the course's own measurements (docs/kubernetes.md).

    python -m course_lib.dev.capacity                    # tables for classes of 30, 300 and 3,000
    python -m course_lib.dev.capacity --students 120 --node-memory-gib 32 --node-cpus 4

Every measured input is read from docs/benchmarks.md (its tables, by their column names), so the
sizing follows the measurements and docs/kubernetes.md shows this command's output verbatim
(tests/test_capacity.py checks that they agree). Everything else is an assumption with a name
and a default in `Assumptions`; docs/kubernetes.md lists which could not be checked here.

Four questions, one function each:
- `users_per_node`: how many student servers fit a node, after the node's own reservations;
- `rush`: user placeholders and concurrent spawns for the start-of-lecture rush;
- `grading_seconds`: wall time to grade N submissions with an Indexed Job of K pods;
- `serving_replicas`: model-server replicas for a request rate and a p99 target.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.paths import REPO_ROOT

BENCHMARKS = REPO_ROOT / "docs" / "benchmarks.md"
CLASS_SIZES = (30, 300, 3000)
GRADED_NOTEBOOK = "01-tensorflow-and-keras"  # the notebook the grading benchmark graded
SLOWEST_NOTEBOOK_HINT = "the notebook with the longest measured run"
MIB_PER_GIB = 1024


# --- measurements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingRow:
    """One row of the serving load test: one replica of the course server on the 2-core VM."""

    scenario: str
    protocol: str
    batching: str
    users: int
    requests_per_second: float
    p99_ms: float


@dataclass(frozen=True)
class Measurements:
    """What docs/benchmarks.md measured, in the units the sizing needs."""

    notebook_peak_mib: dict[str, float]  # kernel peak RSS per notebook, QUICK=True
    notebook_seconds: dict[str, float]  # papermill run time per notebook, QUICK=True
    grading_seconds_per_submission: float  # one nbgrader run per student, GRADED_NOTEBOOK
    grading_peak_mib: float  # largest RSS of any grading process
    serving: tuple[ServingRow, ...] = ()

    @property
    def peak_notebook(self) -> tuple[str, float]:
        name = max(self.notebook_peak_mib, key=lambda n: self.notebook_peak_mib[n])
        return name, self.notebook_peak_mib[name]

    @property
    def slowest_notebook(self) -> tuple[str, float]:
        name = max(self.notebook_seconds, key=lambda n: self.notebook_seconds[n])
        return name, self.notebook_seconds[name]

    def grading_seconds_for(self, notebook: str) -> float:
        """Per-submission grading time of `notebook`: the measured one, scaled by run time for the others.

        Only GRADED_NOTEBOOK's grading was measured; for another notebook the measured time is scaled
        by the ratio of the two notebooks' papermill run times (an assumption, printed as such).
        """
        if notebook == GRADED_NOTEBOOK:
            return self.grading_seconds_per_submission
        ratio = self.notebook_seconds[notebook] / self.notebook_seconds[GRADED_NOTEBOOK]
        return self.grading_seconds_per_submission * ratio

    def serving_row(self, scenario: str, protocol: str, batching_off: bool) -> ServingRow:
        """The first load-test row whose scenario starts with `scenario` ('tiny' is also 'tiny-dense')."""
        for row in self.serving:
            if (
                row.scenario.startswith(scenario)
                and row.protocol == protocol
                and (row.batching == "off") == batching_off
            ):
                return row
        raise BenchmarksFormatError(f"no serving row for {scenario} over {protocol} (batching off: {batching_off})")


class BenchmarksFormatError(ValueError):
    """docs/benchmarks.md no longer holds a table the sizing reads: the message names it."""


def _number(cell: str) -> float:
    """'1,395' -> 1395.0, '9.0 s' -> 9.0, '657 MiB' -> 657.0."""
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell)
    if not match:
        raise BenchmarksFormatError(f"expected a number, got {cell!r}")
    return float(match.group().replace(",", ""))


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in `text`: a list of rows (header first, the |---| line left out), each a list of cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = [cell.strip() for cell in stripped[1:-1].split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _table_with(tables: list[list[list[str]]], *columns: str) -> tuple[dict[str, int], list[list[str]]]:
    """The first table whose header has a column starting with each of `columns`, and its body."""
    for table in tables:
        header = table[0]
        found = {}
        for wanted in columns:
            index = next((i for i, name in enumerate(header) if name.startswith(wanted)), None)
            if index is None:
                break
            found[wanted] = index
        else:
            return found, table[1:]
    raise BenchmarksFormatError(
        f"docs/benchmarks.md has no table with the columns {', '.join(repr(c) for c in columns)}: "
        "the capacity model reads it (course_lib/dev/capacity.py); restore the table or update the reader"
    )


def read_measurements(path: Path = BENCHMARKS) -> Measurements:
    """The sizing inputs from docs/benchmarks.md (notebooks' run time and memory, grading, serving)."""
    tables = markdown_tables(Path(path).read_text())
    cols, rows = _table_with(tables, "notebook", "seconds (papermill", "kernel peak RSS")
    notebooks = [row for row in rows if re.match(r"\d\d-", row[cols["notebook"]])]
    if not notebooks:
        raise BenchmarksFormatError("the notebook run-time table of docs/benchmarks.md has no notebook rows")
    peak = {row[cols["notebook"]]: _number(row[cols["kernel peak RSS"]]) for row in notebooks}
    seconds = {row[cols["notebook"]]: _number(row[cols["seconds (papermill"]]) for row in notebooks}
    cols, rows = _table_with(tables, "submissions", "per submission", "peak RSS of any grading process")
    grading = rows[0]
    cols_s, rows_s = _table_with(tables, "scenario", "protocol", "batching", "users", "req/s", "p99 ms")
    serving = tuple(
        ServingRow(
            scenario=row[cols_s["scenario"]],
            protocol=row[cols_s["protocol"]],
            batching=row[cols_s["batching"]],
            users=int(_number(row[cols_s["users"]])),
            requests_per_second=_number(row[cols_s["req/s"]]),
            p99_ms=_number(row[cols_s["p99 ms"]]),
        )
        for row in rows_s
    )
    return Measurements(
        notebook_peak_mib=peak,
        notebook_seconds=seconds,
        grading_seconds_per_submission=_number(grading[cols["per submission"]]),
        grading_peak_mib=_number(grading[cols["peak RSS of any grading process"]]),
        serving=serving,
    )


# --- assumptions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A worker node: its size as sold (GiB, vCPUs) and the pod limit of its cluster."""

    memory_gib: float = 64.0
    cpus: float = 8.0
    max_pods: int = 110  # Kubernetes' and GKE's default; EKS allows fewer on small nodes


@dataclass(frozen=True)
class Assumptions:
    """What the course could not measure here; docs/kubernetes.md lists each one."""

    node: Node = field(default_factory=Node)
    cpu_guarantee: float = 0.1  # CPUs reserved per student server (config.yaml)
    daemonset_memory_mib: float = 512.0  # per node: CNI, kube-proxy, log agent, image puller
    daemonset_cpus: float = 0.2
    daemonset_pods: int = 8
    attendance: float = 1.0  # share of the class that starts a server in the rush
    rush_minutes: float = 8.0  # the reference: about 450 logins within 8 minutes
    node_ready_minutes: float = 5.0  # autoscaler: decision to a node that runs pods, image pulled
    spawn_seconds: float = 30.0  # one spawn on a ready node with the image already pulled
    concurrent_spawn_limit: int = 64  # z2jh's default hub.concurrentSpawnLimit
    grading_pod_overhead_seconds: float = 60.0  # pod start, course copy, first nbgrader start
    grading_students_per_pod: int = 30  # Indexed Job batch size (deploy/kubernetes/grading/job.yaml)
    requests_per_student: float = 1.0  # req/s each student sends to a shared class model server
    serving_utilisation: float = 0.7  # HPA target: a replica runs at most 70% of its measured rate
    min_serving_replicas: int = 2  # the PodDisruptionBudget keeps one while a node drains


# --- the model -------------------------------------------------------------------------------------


def _tiers(amount: float, tiers: list[tuple[float, float]], rest: float) -> float:
    """Sum of rate x slice over consecutive slices of `amount` (GKE's reservation tables)."""
    reserved, start = 0.0, 0.0
    for size, rate in tiers:
        reserved += max(0.0, min(amount, start + size) - start) * rate
        start += size
    return reserved + max(0.0, amount - start) * rest


def allocatable_memory_mib(node_gib: float) -> float:
    """Memory pods may request on a node: GKE's kubelet reservation and the 100 MiB eviction threshold.

    25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112, 2% above 128
    (cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes); other clouds reserve less or
    more: check `kubectl describe node` (Allocatable) on the real node type.
    """
    reserved_gib = _tiers(node_gib, [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06)], 0.02)
    return (node_gib - reserved_gib) * MIB_PER_GIB - 100.0


def allocatable_cpus(node_cpus: float) -> float:
    """CPUs pods may request: GKE reserves 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25% above 4."""
    return node_cpus - _tiers(node_cpus, [(1, 0.06), (1, 0.01), (2, 0.005)], 0.0025)


def users_per_node(node: Node, memory_guarantee_mib: float, cpu_guarantee: float, assumptions: Assumptions) -> int:
    """Student servers that fit one node by their guarantees (requests): memory, CPU or the pod limit."""
    memory = allocatable_memory_mib(node.memory_gib) - assumptions.daemonset_memory_mib
    cpus = allocatable_cpus(node.cpus) - assumptions.daemonset_cpus
    pods = node.max_pods - assumptions.daemonset_pods
    return max(0, min(math.floor(memory / memory_guarantee_mib), math.floor(cpus / cpu_guarantee), pods))


@dataclass(frozen=True)
class Rush:
    """The start of a lecture for one class."""

    students: int
    arrivals: int  # servers started in the rush
    arrivals_per_minute: float
    placeholders: int  # user placeholders that absorb the arrivals while a new node starts
    pending_spawns: float  # spawns in flight at once (Little's law)
    nodes_at_peak: int
    placeholder_nodes: int  # nodes the placeholders keep running before the lecture


def rush(students: int, per_node: int, assumptions: Assumptions) -> Rush:
    """Placeholders = arrivals during one node start-up; spawns in flight = arrival rate x spawn time."""
    if per_node < 1:
        raise ValueError("not one student server fits this node: choose a bigger node or smaller guarantees")
    arrivals = math.ceil(students * assumptions.attendance)
    per_minute = arrivals / assumptions.rush_minutes
    placeholders = min(arrivals, math.ceil(per_minute * assumptions.node_ready_minutes))
    return Rush(
        students=students,
        arrivals=arrivals,
        arrivals_per_minute=per_minute,
        placeholders=placeholders,
        pending_spawns=per_minute * assumptions.spawn_seconds / 60,
        nodes_at_peak=math.ceil(arrivals / per_node),
        placeholder_nodes=math.ceil(placeholders / per_node),
    )


def grading_seconds(submissions: int, pods: int, batch_size: int, seconds_each: float, overhead: float) -> float:
    """Wall time of an Indexed Job: ceil(N / batch) completions, `pods` at a time, one student at a time per pod."""
    if submissions <= 0:
        return 0.0
    completions = math.ceil(submissions / batch_size)
    waves = math.ceil(completions / pods)
    return waves * (overhead + batch_size * seconds_each)


def serving_replicas(rate: float, p99_target_ms: float, row: ServingRow, assumptions: Assumptions) -> int | None:
    """Replicas so that each runs at most `serving_utilisation` of its measured rate; None when the
    measured p99 is above the target (one measured point says nothing about lower latencies)."""
    if row.p99_ms > p99_target_ms:
        return None
    per_replica = row.requests_per_second * assumptions.serving_utilisation
    return max(assumptions.min_serving_replicas, math.ceil(rate / per_replica))


# --- the course's sizing rules, as the manifests use them ------------------------------------------


def round_up_mib(mib: float, step: int = 256) -> int:
    return int(math.ceil(mib / step) * step)


def student_memory_guarantee_mib(measured: Measurements) -> int:
    """The largest kernel peak of any notebook, rounded up to 256 MiB: config.yaml's guarantee."""
    return round_up_mib(measured.peak_notebook[1])


def grading_memory_request_mib(measured: Measurements) -> int:
    """A grading pod runs one student's notebook at a time: the larger of the grading peak and any notebook's."""
    return round_up_mib(max(measured.grading_peak_mib, measured.peak_notebook[1]))


# --- the tables ------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A markdown table: the first `text_columns` columns left-aligned, the numbers right-aligned."""
    align = ["---" if i < text_columns else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def report(
    measured: Measurements,
    assumptions: Assumptions,
    class_sizes: tuple[int, ...] = CLASS_SIZES,
    p99_target_ms: float = 250.0,
) -> str:
    """The sizing tables, in markdown: inputs, hub, grading, model server."""
    node = assumptions.node
    peak_name, peak_mib = measured.peak_notebook
    guarantee = student_memory_guarantee_mib(measured)
    per_node = users_per_node(node, guarantee, assumptions.cpu_guarantee, assumptions)
    slow_name, slow_seconds = measured.slowest_notebook
    grading_request = grading_memory_request_mib(measured)
    image_row = measured.serving_row("image (small_cnn)", "grpc", batching_off=True)
    tiny_row = next(
        r for r in measured.serving if r.scenario == "tiny" and r.protocol == "rest" and r.batching != "off"
    )
    out = [
        "Measured inputs (docs/benchmarks.md):",
        "",
        _table(
            ["input", "value", "from"],
            [
                ["largest kernel peak of a notebook", f"{peak_mib:,.0f} MiB", f"{peak_name}, QUICK=True"],
                ["student memory guarantee (peak, rounded up to 256 MiB)", f"{guarantee:,} MiB", "sizing rule"],
                [
                    "grading time per submission",
                    f"{measured.grading_seconds_per_submission:.1f} s",
                    f"{GRADED_NOTEBOOK}, one nbgrader run per student",
                ],
                [
                    f"grading time per submission, {slow_name} (scaled by run time, not measured)",
                    f"{measured.grading_seconds_for(slow_name):.1f} s",
                    f"{slow_seconds:.1f} s / {measured.notebook_seconds[GRADED_NOTEBOOK]:.1f} s of papermill time",
                ],
                [
                    "grading pod memory request",
                    f"{grading_request:,} MiB",
                    f"max(grading peak {measured.grading_peak_mib:,.0f} MiB, notebook peak)",
                ],
                [
                    "one course-server replica, image model over gRPC",
                    f"{image_row.requests_per_second:,.0f} req/s at p99 {image_row.p99_ms:,.0f} ms",
                    f"{image_row.users} clients, 2-core VM shared with the load generator",
                ],
                [
                    "one course-server replica, tiny model over REST, batching",
                    f"{tiny_row.requests_per_second:,.0f} req/s at p99 {tiny_row.p99_ms:,.0f} ms",
                    f"{tiny_row.users} clients, same VM",
                ],
            ],
            text_columns=3,
        ),
        "",
        (
            f"Node: {node.cpus:g} vCPU, {node.memory_gib:g} GiB, at most {node.max_pods} pods; allocatable "
            f"{allocatable_memory_mib(node.memory_gib) / MIB_PER_GIB:.1f} GiB and "
            f"{allocatable_cpus(node.cpus):.2f} CPUs "
            f"(GKE's reservations), minus daemon sets ({assumptions.daemonset_memory_mib:g} MiB, "
            f"{assumptions.daemonset_cpus:g} CPU): **{per_node} student servers per node** "
            f"({guarantee:,} MiB and {assumptions.cpu_guarantee:g} CPU guaranteed each)."
        ),
        "",
        (
            f"Start of a lecture: {assumptions.attendance:.0%} of the class starts a server within "
            f"{assumptions.rush_minutes:g} minutes; a new node takes {assumptions.node_ready_minutes:g} minutes, "
            f"a spawn {assumptions.spawn_seconds:g} s."
        ),
        "",
    ]
    rush_rows = []
    for students in class_sizes:
        r = rush(students, per_node, assumptions)
        limit_ok = "yes" if r.pending_spawns <= assumptions.concurrent_spawn_limit else "**no: raise it**"
        rush_rows.append(
            [
                f"{students:,}",
                f"{r.arrivals_per_minute:,.1f}",
                f"{r.nodes_at_peak:,}",
                f"{r.placeholders:,}",
                f"{r.placeholder_nodes:,}",
                f"{r.pending_spawns:,.1f}",
                limit_ok,
            ]
        )
    out += [
        _table(
            [
                "students",
                "arrivals / min",
                "user nodes at peak",
                "user placeholders",
                "nodes the placeholders hold",
                "spawns in flight",
                f"within concurrentSpawnLimit {assumptions.concurrent_spawn_limit}?",
            ],
            rush_rows,
        ),
        "",
        (
            f"Grading one assignment: an Indexed Job, {assumptions.grading_students_per_pod} students per completion, "
            f"one student at a time per pod, {assumptions.grading_pod_overhead_seconds:g} s of start-up per pod; "
            f"each pod requests {grading_request:,} MiB."
        ),
        "",
    ]
    grading_rows = []
    batch = assumptions.grading_students_per_pod
    for students in class_sizes:
        completions = math.ceil(students / batch)
        serial = students * measured.grading_seconds_per_submission
        for pods in sorted({1, min(10, completions), completions}):
            fast = grading_seconds(
                students, pods, batch, measured.grading_seconds_per_submission, assumptions.grading_pod_overhead_seconds
            )
            slow = grading_seconds(
                students, pods, batch, measured.grading_seconds_for(slow_name), assumptions.grading_pod_overhead_seconds
            )
            grading_rows.append(
                [f"{students:,}", f"{completions:,}", f"{pods:,}", _minutes(serial), _minutes(fast), _minutes(slow)]
            )
    out += [
        _table(
            [
                "students",
                "completions",
                "pods at once",
                f"{GRADED_NOTEBOOK}, one process",
                f"{GRADED_NOTEBOOK}, Job",
                f"{slow_name}, Job (scaled)",
            ],
            grading_rows,
        ),
        "",
        (
            f"A shared class model server: each student sends {assumptions.requests_per_student:g} req/s; "
            f"p99 target {p99_target_ms:g} ms; each replica (2 CPUs) runs at most "
            f"{assumptions.serving_utilisation:.0%} of its measured rate, and at least "
            f"{assumptions.min_serving_replicas} replicas run."
        ),
        "",
    ]
    serving_rows = []
    for students in class_sizes:
        rate = students * assumptions.requests_per_student
        cells = [f"{students:,}", f"{rate:,.0f}"]
        for row in (image_row, tiny_row):
            replicas = serving_replicas(rate, p99_target_ms, row, assumptions)
            cells.append("not measured at this p99" if replicas is None else f"{replicas:,}")
        serving_rows.append(cells)
    out.append(
        _table(
            ["students", "req/s", "replicas, image model (gRPC)", "replicas, tiny model (REST, batching)"],
            serving_rows,
        )
    )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.capacity", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--students", default=",".join(str(n) for n in CLASS_SIZES), help="class sizes, comma-separated"
    )
    parser.add_argument("--node-memory-gib", type=float, default=Node.memory_gib)
    parser.add_argument("--node-cpus", type=float, default=Node.cpus)
    parser.add_argument("--max-pods", type=int, default=Node.max_pods)
    parser.add_argument("--p99-ms", type=float, default=250.0, help="model-server p99 target")
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS, help="where the measurements are")
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(n) for n in args.students.split(",") if n.strip())
    except ValueError:
        parser.error(f"--students takes whole numbers separated by commas, got {args.students!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--students needs at least one class size of 1 or more")
    try:
        measured = read_measurements(args.benchmarks)
    except (OSError, BenchmarksFormatError) as error:
        print(f"capacity: cannot read the measurements: {error}", file=sys.stderr)
        return 2
    assumptions = Assumptions(node=Node(args.node_memory_gib, args.node_cpus, args.max_pods))
    try:
        print(report(measured, assumptions, sizes, args.p99_ms), end="")
    except ValueError as error:
        print(f"capacity: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

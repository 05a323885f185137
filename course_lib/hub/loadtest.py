"""The load test: N students at once log in, spawn, run one cell and submit, against a fresh hub.

Everything is real and on loopback: N Unix accounts (tfc-loadNN, deleted at the end), the hub with
its proxy and formgrader, one server per student in its own cgroup, nbgrader's exchange. Counts and
the time limit are fixed; it reports spawn times (p50, p95), the hub's and the proxy's peak resident
memory, failures, and how many submissions `nbgrader collect` received. Speed is recorded, never
asserted here: the tests assert that nothing was lost.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from course_lib.errors import CourseError, first_line
from course_lib.hub.client import HubUser
from course_lib.hub.launch import RunningHub, hub_rss_bytes, prepare, run_as_grader, tear_down
from course_lib.hub.settings import BIN, HubSettings
from course_lib.paths import REPO_ROOT, STUDENT_NOTEBOOKS
from course_lib.units import MIB

ASSIGNMENT = "01-tensorflow-and-keras"
CELL = "print(6 * 7)"
INSTRUCTOR = "tfc-loadteacher"
GRADER = "tfc-loadgrader"


@dataclass
class StudentRun:
    name: str
    spawn_s: float | None = None
    cell_s: float | None = None
    submitted: bool = False
    error: str = ""


@dataclass
class LoadReport:
    students: int
    spawned: int = 0
    ran_cell: int = 0
    submitted: int = 0
    submissions_received: int = 0
    failures: list[str] = field(default_factory=list)
    spawn_p50_s: float | None = None
    spawn_p95_s: float | None = None
    spawn_max_s: float | None = None
    cell_p50_s: float | None = None
    hub_rss_peak_mib: float | None = None
    proxy_rss_peak_mib: float | None = None
    wall_s: float = 0.0
    conditions: dict = field(default_factory=dict)


def percentile(values: list[float], fraction: float) -> float | None:
    """The value below which `fraction` of `values` lie (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def release_student_version(settings: HubSettings, teacher: HubUser, assignment: str = ASSIGNMENT) -> None:
    """Release the repository's student version of `assignment` (already generated) through formgrader."""
    target = settings.course_dir / STUDENT_NOTEBOOKS / assignment
    shutil.copytree(REPO_ROOT / STUDENT_NOTEBOOKS / assignment, target, dirs_exist_ok=True)
    entry = pwd.getpwnam(settings.grader)
    for folder in (target.parent, target, *target.iterdir()):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    if run_as_grader(settings, [str(BIN / "nbgrader"), "db", "assignment", "add", assignment]) != 0:
        raise CourseError(f"nbgrader db assignment add {assignment} failed as {settings.grader} (output above)")
    answer = teacher.formgrader("POST", f"/api/assignment/{assignment}/release")
    if answer.status_code != 200 or not answer.json().get("success"):
        raise CourseError(f"release of {assignment} through formgrader failed: {answer.text[:500]}")


STEP_LIMIT_S = 300  # one student's spawn or cell: a stuck one fails alone instead of holding the run


def _student(settings: HubSettings, name: str, password: str, deadline: float) -> StudentRun:
    run = StudentRun(name)
    user = HubUser(settings.url, name, timeout=120)

    def left() -> float:
        return max(1.0, min(STEP_LIMIT_S, deadline - time.monotonic()))

    try:
        user.login(password)
        run.spawn_s = round(user.spawn(timeout=left()), 3)
        started = time.monotonic()
        output = user.run_code(CELL, timeout=left())
        if output.strip() != "42":
            raise CourseError(f"the cell printed {output!r}, not 42")
        run.cell_s = round(time.monotonic() - started, 3)
        user.nbgrader("fetch", ASSIGNMENT)
        user.nbgrader("submit", ASSIGNMENT)
        run.submitted = True
    except Exception as error:  # every failure is counted and reported, none stops the others
        run.error = f"{type(error).__name__}: {first_line(error)}"
    return run


def _sample_rss(settings: HubSettings, peaks: dict[str, int], stop: threading.Event) -> None:
    while not stop.is_set():
        for name, size in hub_rss_bytes(settings).items():
            peaks[name] = max(peaks.get(name, 0), size)
        stop.wait(0.5)


def drive_students(settings: HubSettings, teacher: HubUser, passwords: dict[str, str], time_limit: float) -> LoadReport:
    """All students in `passwords` at once against a running hub with ASSIGNMENT released; then collect."""
    names = sorted(passwords)
    report = LoadReport(len(names))
    load_before = os.getloadavg()
    peaks: dict[str, int] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(settings, peaks, stop), daemon=True)
    sampler.start()
    started = time.monotonic()
    deadline = started + time_limit
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="student") as pool:
        jobs = [pool.submit(_student, settings, n, passwords[n], deadline) for n in names]
        wait(jobs, timeout=time_limit + 60)
        runs = [job.result() if job.done() else StudentRun("?", error="past the time limit") for job in jobs]
    report.wall_s = round(time.monotonic() - started, 1)
    stop.set()
    sampler.join()
    collected = teacher.formgrader("POST", f"/api/assignment/{ASSIGNMENT}/collect")
    if collected.status_code != 200:
        report.failures.append(f"collect: HTTP {collected.status_code}")
    submitted = settings.course_dir / "submitted"
    report.submissions_received = sum(1 for n in names if (submitted / n / ASSIGNMENT).is_dir())
    spawns = [r.spawn_s for r in runs if r.spawn_s is not None]
    report.spawned = len(spawns)
    report.ran_cell = sum(1 for r in runs if r.cell_s is not None)
    report.submitted = sum(1 for r in runs if r.submitted)
    report.failures += [f"{r.name}: {r.error}" for r in runs if r.error]
    report.spawn_p50_s = percentile(spawns, 0.5)
    report.spawn_p95_s = percentile(spawns, 0.95)
    report.spawn_max_s = max(spawns, default=None)
    cells = [r.cell_s for r in runs if r.cell_s is not None]
    report.cell_p50_s = round(statistics.median(cells), 3) if cells else None
    report.hub_rss_peak_mib = round(peaks["hub"] / MIB, 1) if "hub" in peaks else None
    report.proxy_rss_peak_mib = round(peaks["proxy"] / MIB, 1) if "proxy" in peaks else None
    report.conditions = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "per_server_limits": f"{settings.memory} memory, {settings.cpus} CPU (cgroup per server)",
        "cell": CELL,
        "assignment": ASSIGNMENT,
        "time_limit_s": time_limit,
    }
    return report


def run_load_test(students: int, time_limit: float = 600, log_dir: Path | None = None) -> LoadReport:
    """Start a hub for `students` new accounts, drive them all at once, tear everything down."""
    if students < 1:
        raise CourseError(f"--students must be at least 1, not {students}")
    names = [f"tfc-load{i:02d}" for i in range(students)]
    passwords = {name: secrets.token_urlsafe(12) for name in [*names, INSTRUCTOR]}
    state = Path(tempfile.mkdtemp(prefix="tfc-hub-load-", dir="/tmp"))
    os.chmod(state, 0o755)  # students reach the exchange and their config below it
    log = (log_dir or state.parent) / f"{state.name}.log"  # kept after the state is removed
    roster = state / "roster.csv"
    roster.write_text("username,role\n" + f"{INSTRUCTOR},instructor\n" + "".join(f"{n},student\n" for n in names))
    settings = HubSettings.on_free_ports(roster, state / "state", GRADER)
    hub = None
    try:
        prepare(settings, passwords)
        hub = RunningHub(settings, log)
        teacher = HubUser(settings.url, INSTRUCTOR, timeout=120)
        teacher.login(passwords[INSTRUCTOR])
        release_student_version(settings, teacher)
        return drive_students(settings, teacher, {n: passwords[n] for n in names}, time_limit)
    finally:
        if hub is not None:
            hub.stop()
        tear_down(settings)
        shutil.rmtree(state, ignore_errors=True)


def report_load_test(students: int, out: Path | None, time_limit: float) -> int:
    """Run the load test, print its JSON report (and write it to `out`); 0 when every student spawned and submitted."""
    report = run_load_test(students, time_limit)
    text = json.dumps(asdict(report), indent=1)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 0 if report.spawned == students and report.submissions_received == students else 1

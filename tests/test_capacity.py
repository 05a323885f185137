"""The sizing model of the course on Kubernetes (course_lib/dev/capacity.py, docs/kubernetes.md).

The arithmetic is checked against cases worked by hand; the inputs are read from docs/benchmarks.md
(the same tables the docs show), and the tables in docs/kubernetes.md are this command's output.
"""

import math
import re

import pytest

from course_lib.dev import capacity
from course_lib.dev.capacity import Assumptions, Node, ServingRow
from course_lib.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "kubernetes.md"
NO_DAEMONSETS = Assumptions(daemonset_memory_mib=0, daemonset_cpus=0, daemonset_pods=0)


def test_gke_reservations_by_hand():
    # 26 GiB: 25% of 4 + 20% of 4 + 10% of 8 + 6% of 10 = 1 + 0.8 + 0.8 + 0.6 = 3.2 GiB, then 100 MiB
    assert capacity.allocatable_memory_mib(26) == pytest.approx((26 - 3.2) * 1024 - 100)
    # 150 GiB: 1 + 0.8 + 0.8 + 6.72 + 2% of 22 = 9.76 GiB (the calculator's 9.8577 includes the 100 MiB)
    assert capacity.allocatable_memory_mib(150) == pytest.approx((150 - 9.76) * 1024 - 100)
    # 4 CPUs: 6% of 1 + 1% of 1 + 0.5% of 2 = 0.08
    assert capacity.allocatable_cpus(4) == pytest.approx(3.92)
    assert capacity.allocatable_cpus(8) == pytest.approx(8 - 0.08 - 0.01)


def test_the_z2jh_guides_node_holds_about_50_users_of_512_mib():
    """n1-highmem-4 (4 vCPU, 26 GiB), 512 MiB and 0.05 CPU guaranteed: the guide says 'about 50'.

    Without reservations 26 GiB / 512 MiB = 52; with GKE's, floor(23,247.2 / 512) = 45.
    """
    node = Node(memory_gib=26, cpus=4, max_pods=110)
    assert capacity.users_per_node(node, 512, 0.05, NO_DAEMONSETS) == 45
    # CPU binds when the guarantee is large: floor(3.92 / 0.5) = 7
    assert capacity.users_per_node(node, 512, 0.5, NO_DAEMONSETS) == 7
    # and the pod limit when everything is tiny: 110 - 8 daemon-set pods
    assert capacity.users_per_node(node, 1, 0.001, Assumptions()) == 102


def test_rush_by_hand():
    """450 logins in 8 minutes (the issue's reference), nodes ready in 5, spawns of 30 s."""
    r = capacity.rush(450, per_node=38, assumptions=Assumptions())
    assert r.arrivals_per_minute == pytest.approx(56.25)
    assert r.placeholders == math.ceil(56.25 * 5) == 282
    assert r.pending_spawns == pytest.approx(28.125)
    assert (r.nodes_at_peak, r.placeholder_nodes) == (12, 8)
    small = capacity.rush(10, per_node=38, assumptions=Assumptions())
    assert small.placeholders == 7  # ceil(10 / 8 * 5): fewer than the class
    assert capacity.rush(3, per_node=38, assumptions=Assumptions(rush_minutes=1)).placeholders == 3  # never more
    with pytest.raises(ValueError, match="bigger node"):
        capacity.rush(30, per_node=0, assumptions=Assumptions())


def test_grading_time_by_hand():
    # The measured benchmark itself: 30 submissions, one process, 9 s each, no pod overhead -> 270 s
    assert capacity.grading_seconds(30, pods=1, batch_size=30, seconds_each=9.0, overhead=0) == 270
    # 300 students, batches of 30 -> 10 completions; 10 pods -> one wave of 60 + 30 x 9 s
    assert capacity.grading_seconds(300, pods=10, batch_size=30, seconds_each=9.0, overhead=60) == 330
    # 4 pods -> ceil(10 / 4) = 3 waves
    assert capacity.grading_seconds(300, pods=4, batch_size=30, seconds_each=9.0, overhead=60) == 990
    assert capacity.grading_seconds(0, pods=4, batch_size=30, seconds_each=9.0, overhead=60) == 0


def test_serving_replicas_by_hand():
    row = ServingRow("image", "grpc", "off", 32, requests_per_second=511, p99_ms=130)
    # 1,000 req/s / (511 x 0.7) = 2.8 -> 3
    assert capacity.serving_replicas(1000, 250, row, Assumptions()) == 3
    assert capacity.serving_replicas(10, 250, row, Assumptions()) == 2  # never below the PDB's floor
    assert capacity.serving_replicas(1000, 100, row, Assumptions()) is None  # measured p99 is 130 ms


def test_the_inputs_come_from_the_benchmark_tables():
    measured = capacity.read_measurements()
    text = capacity.BENCHMARKS.read_text()
    assert len(measured.notebook_peak_mib) >= 10
    name, peak = measured.peak_notebook
    assert re.search(rf"\| {re.escape(name)} \| [\d.]+ \| {peak:,.0f} \|", text)
    assert f"max {peak:,.0f}" in text  # the table's own total row agrees
    assert capacity.student_memory_guarantee_mib(measured) >= peak
    assert capacity.grading_memory_request_mib(measured) >= max(peak, measured.grading_peak_mib)
    per_submission = measured.grading_seconds_per_submission
    assert f"| {per_submission:.1f} s |" in text
    assert measured.grading_seconds_for(capacity.GRADED_NOTEBOOK) == per_submission
    assert measured.serving_row("image (small_cnn)", "grpc", batching_off=True).p99_ms > 0


def test_a_missing_table_is_named(tmp_path):
    broken = tmp_path / "benchmarks.md"
    broken.write_text("# Benchmarks\n\n| notebook | seconds |\n|---|---|\n| 01-x | 3 |\n")
    with pytest.raises(capacity.BenchmarksFormatError, match="kernel peak RSS"):
        capacity.read_measurements(broken)
    assert capacity.main(["--benchmarks", str(broken)]) == 2


def test_the_command_prints_the_three_class_sizes(capsys):
    assert capacity.main([]) == 0
    out = capsys.readouterr().out
    measured = capacity.read_measurements()
    for students in ("| 30 |", "| 300 |", "| 3,000 |"):
        assert out.count(students) >= 3  # rush, grading and serving tables
    assert f"{measured.peak_notebook[1]:,.0f} MiB" in out
    assert f"{measured.grading_seconds_per_submission:.1f} s" in out


def test_bad_class_sizes_are_refused(capsys):
    with pytest.raises(SystemExit):
        capacity.main(["--students", "thirty"])
    assert "whole numbers" in capsys.readouterr().err


def test_the_docs_show_the_commands_output():
    """docs/kubernetes.md's tables are `python -m course_lib.dev.capacity`'s output, verbatim."""
    text = DOC.read_text()
    match = re.search(r"<!-- capacity: begin -->\n(.*?)<!-- capacity: end -->", text, re.S)
    assert match, "docs/kubernetes.md needs the capacity block between its markers"
    measured = capacity.read_measurements()
    assert match.group(1) == capacity.report(measured, Assumptions()), (
        "docs/kubernetes.md is out of date: paste the output of `python -m course_lib.dev.capacity`"
    )

"""Binder's limits for real: a cgroup with 1 CPU and a memory limit, notebooks run inside it.

The live tests need root and a writable cgroup file system. CI (.ci/run) has both, and there they
fail rather than skip, unless the CI declares why it cannot in COURSE_NO_CGROUPS (GitHub's job
container mounts the cgroup file system read-only). The folder-layout tests run anywhere on fake
cgroup trees.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.dev import binder_check
from course_lib.dev.cgroup_sandbox import Sandbox
from course_lib.errors import CourseError

MIB = 2**20
V1_MEMBERSHIP = "4:memory:/jobs/7\n1:cpu,cpuacct:/\n0::/\n"


def fake_v1_tree(root: Path) -> Path:
    (root / "memory" / "jobs" / "7").mkdir(parents=True)
    (root / "cpu,cpuacct").mkdir()
    return root


def test_a_v1_sandbox_is_made_inside_the_process_own_cgroups(tmp_path):
    root = fake_v1_tree(tmp_path)
    sandbox = Sandbox.create(2 * 2**30, 1.5, name="box", root=root, membership=V1_MEMBERSHIP)
    assert (sandbox.version, sandbox.memory_dir, sandbox.cpu_dir) == (
        1,
        root / "memory" / "jobs" / "7" / "box",
        root / "cpu,cpuacct" / "box",
    )
    assert (sandbox.memory_dir / "memory.limit_in_bytes").read_text() == str(2 * 2**30)
    assert (sandbox.cpu_dir / "cpu.cfs_quota_us").read_text() == "150000"
    assert (sandbox.cpu_dir / "cpu.cfs_period_us").read_text() == "100000"


def test_a_v2_sandbox_needs_the_memory_and_cpu_controllers(tmp_path):
    """v2 sandboxes go at the top: below a cgroup with processes (ours) v2 cannot enable controllers."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    box = tmp_path / "box"
    box.mkdir()
    (box / "cgroup.controllers").write_text("cpu memory\n")
    sandbox = Sandbox.create(2**30, 1, name="box", root=tmp_path, membership="0::/user.slice\n")
    assert (sandbox.version, sandbox.memory_dir) == (2, box)
    assert (box / "memory.max").read_text() == str(2**30)
    assert (box / "cpu.max").read_text() == "100000 100000"

    (box / "cgroup.controllers").write_text("pids\n")
    with pytest.raises(CourseError, match="not delegated the memory and cpu controllers"):
        Sandbox.create(2**30, 1, name="box", root=tmp_path, membership="0::/user.slice\n")


def test_a_cgroup_file_system_that_cannot_be_written_gets_an_actionable_error(tmp_path):
    with pytest.raises(CourseError, match=r"cannot create a cgroup.*--in-place"):
        Sandbox.create(2**30, 1, root=tmp_path / "missing", membership=V1_MEMBERSHIP)
    with pytest.raises(CourseError, match="limits must be positive"):
        Sandbox.create(0, 1, root=tmp_path, membership=V1_MEMBERSHIP)


def test_the_current_cgroup_is_found_and_never_removed(tmp_path):
    root = fake_v1_tree(tmp_path)
    current = Sandbox.current(root=root, membership=V1_MEMBERSHIP)
    assert (current.memory_dir, current.cpu_dir, current.owned) == (
        root / "memory" / "jobs" / "7",
        root / "cpu,cpuacct",
        False,
    )
    current.remove()
    assert current.memory_dir.is_dir()


@pytest.fixture
def sandbox_factory():
    """Makes live sandboxes and removes every one of them, whatever the test did."""
    made = []

    def make(memory_bytes: int, cpus: float = 1.0) -> Sandbox:
        try:
            sandbox = Sandbox.create(memory_bytes, cpus, name=f"course-test-{os.getpid()}-{len(made)}")
        except CourseError as error:
            declared = os.environ.get("COURSE_NO_CGROUPS")  # a CI that says why it cannot (GitHub's job container)
            if os.environ.get("CI") and not declared:
                pytest.fail(
                    f"CI must be able to make cgroups (.ci/run runs as root), or set COURSE_NO_CGROUPS to "
                    f"the reason it cannot: {error}",
                    pytrace=False,
                )
            pytest.skip(f"no writable cgroups here ({declared or 'not root?'}): {error}")
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.remove()
        assert not any(folder.exists() for folder in sandbox.folders())


def test_a_process_in_the_sandbox_reads_its_limits_and_sizes_batches_from_them(sandbox_factory):
    sandbox = sandbox_factory(1536 * MIB, cpus=1.0)
    probe = (
        "import json, keras, tensorflow as tf; from course_lib import cgroups, environment, memory; "
        "print(json.dumps(cgroups.read_cgroup_limits())); "
        "environment.setup_notebook(); print('threads', tf.config.threading.get_intra_op_parallelism_threads()); "
        "print(memory.fit_batch_sizes(keras.applications.ResNet50(weights=None), (1, 8, 256)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], preexec_fn=sandbox.enter, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert json.loads(out[0]) == [1.0, 1536 * MIB]
    assert "| 1 cores | 1.5 GiB |" in out[1]
    if (os.cpu_count() or 1) > 1:  # the quota is below the host's cores: setup sizes TF's threads, no warning left
        assert out[2].startswith("TensorFlow's thread pools sized to this container's 1-CPU quota: 1 thread(s)")
        assert not any("limit_threads_to_quota" in line for line in out)
    assert "threads 1" in out
    assert out[-2].startswith("WARNING: batch sizes [256] left out: resnet50 would need")
    assert out[-1] == "(1, 8)"


def test_a_process_past_the_memory_limit_is_oom_killed_and_counted(sandbox_factory):
    sandbox = sandbox_factory(256 * MIB)
    returncode, usage = sandbox.run(
        [sys.executable, "-c", "block = bytearray(600 * 2**20); print('survived')"], capture_output=True
    )
    assert returncode == -9
    assert usage.oom_kills >= 1
    assert usage.peak_bytes is not None and usage.peak_bytes >= 200 * MIB
    returncode, usage = sandbox.run([sys.executable, "-c", "block = bytearray(50 * 2**20)"])
    assert (returncode, usage.oom_kills) == (0, 0), "each run counts its own kills"
    assert usage.peak_bytes < 200 * MIB, "each run gets its own peak"


def test_removing_a_sandbox_ends_what_was_left_running_inside(sandbox_factory):
    sandbox = sandbox_factory(256 * MIB)
    sandbox.run(["sh", "-c", "sleep 120 > /dev/null 2>&1 &"])
    assert (sandbox.memory_dir / "cgroup.procs").read_text().split(), "the sleep should still be inside"
    sandbox.remove()
    assert not sandbox.memory_dir.exists() and not sandbox.cpu_dir.exists()


def run_check(*args: str) -> tuple[int, dict, str]:
    out_dir = Path(args[args.index("--out") + 1])
    returncode = binder_check.main(list(args))
    report = json.loads((out_dir / "binder-check.json").read_text())
    return returncode, report, (out_dir / "binder-check.md").read_text()


@pytest.mark.slow  # runs a notebook in a cgroup
def test_a_notebook_runs_under_binder_limits_and_the_report_says_it_fits(sandbox_factory, tmp_path):
    sandbox_factory(2**30)  # skips (or fails in CI) where cgroups cannot be made
    returncode, report, text = run_check(
        "02-install-and-verify", "--memory-gib", "2", "--cpus", "1", "--out", str(tmp_path)
    )
    assert returncode == 0
    assert report["seen_by_course_lib"] == {"cpus": 1.0, "memory_bytes": 2 * 2**30}
    (notebook,) = report["notebooks"]
    assert notebook["fits"] and notebook["oom_kills"] == 0
    assert 0 < notebook["kernel_peak_rss_mib"] < 2048
    assert "memory limit of 2.00 GiB and 1 CPU" in text and "| 02-install-and-verify | yes |" in text
    executed = (tmp_path / "02-install-and-verify.ipynb").read_text()
    assert "usable: 1 cores, 2.0 GiB" in executed  # the notebook itself saw Binder's limits


@pytest.mark.slow  # runs a notebook in a cgroup
def test_a_notebook_killed_for_memory_is_reported_and_the_check_goes_on(sandbox_factory, tmp_path):
    sandbox_factory(2**30)
    returncode, report, text = run_check(
        "02-install-and-verify", "01-tensorflow-and-keras", "--memory-gib", "0.3", "--out", str(tmp_path)
    )
    assert returncode == 1
    assert [n["assignment"] for n in report["notebooks"]] == ["02-install-and-verify", "01-tensorflow-and-keras"]
    for notebook in report["notebooks"]:
        assert not notebook["fits"] and notebook["oom_kills"] >= 1
    assert "| 01-tensorflow-and-keras | NO |" in text


@pytest.mark.slow  # runs a notebook in a cgroup
def test_in_place_uses_the_limits_of_the_container_it_runs_in(sandbox_factory, tmp_path):
    container = sandbox_factory(2 * 2**30)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "course_lib.dev.binder_check",
            "--in-place",
            "02-install-and-verify",
            "--out",
            str(tmp_path),
        ],
        preexec_fn=container.enter,
        check=True,
        capture_output=True,
    )
    report = json.loads((tmp_path / "binder-check.json").read_text())
    assert report["requested"] is None
    assert report["seen_by_course_lib"] == {"cpus": 1.0, "memory_bytes": 2 * 2**30}
    assert report["notebooks"][0]["fits"]
    assert "in this container's own cgroup" in (tmp_path / "binder-check.md").read_text()


def test_the_quota_probe_times_default_and_quota_sized_threads(sandbox_factory):
    from course_lib.dev import quota_threads

    sandbox = sandbox_factory(2 * 2**30, cpus=1.0)
    default = quota_threads.measure(sandbox, size=64, repeats=5, sized=False)
    sized = quota_threads.measure(sandbox, size=64, repeats=5, sized=True)
    assert default["threads"] == "default" and sized["threads"] == 1
    for row in (default, sized):
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]


def test_memory_left_inside_the_sandbox_follows_what_the_cgroup_uses(sandbox_factory):
    sandbox = sandbox_factory(2**30)
    probe = (
        "from course_lib import cgroups; before = cgroups.memory_left_bytes(); "
        "block = bytearray(300 * 2**20); print(before, cgroups.memory_left_bytes())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], preexec_fn=sandbox.enter, capture_output=True, text=True, check=True
    ).stdout
    before, after = map(int, out.split())
    assert 0 < before <= 2**30
    assert before - after >= 280 * MIB, "the 300 MiB block counts against the container's limit"


def test_what_a_notebook_left_out_to_fit_is_read_from_its_outputs(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("BATCH_SIZES = memory.fit_batch_sizes(model, BATCH_SIZES)")
    cell.outputs = [
        nbformat.v4.new_output(
            "stream",
            name="stdout",
            text=(
                "WARNING: batch sizes [128] left out: resnet50 would need 1,528.6 MiB, 882 MiB left. Run on ...\n"
                "batch sizes [1, 8] fit: tiny_cnn needs at most 4.2 MiB, 1,283 MiB left\n"
            ),
        )
    ]
    notebook.cells = [nbformat.v4.new_markdown_cell("WARNING: batch sizes in prose"), cell]
    nbformat.write(notebook, tmp_path / "09.ipynb")
    assert binder_check.memory_warnings(tmp_path / "09.ipynb") == [
        "batch sizes [128] left out: resnet50 would need 1,528.6 MiB, 882 MiB left. Run on ..."
    ]
    assert binder_check.memory_warnings(tmp_path / "missing.ipynb") == []

"""The environment report: parsing of machine facts, diagnosis rules, and the doctor command."""

import subprocess
import sys
from typing import Any

import pytest

from course_lib import cgroups, environment
from course_lib.errors import CourseError

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512_vnni amx_tile
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme
"""


def make_report(**overrides) -> environment.EnvironmentReport:
    facts: dict[str, Any] = {
        "python": "3.11.7",
        "platform": "Linux x86_64",
        "tensorflow": "2.21.0",
        "keras": "3.15.1",
        "build": {"is_cuda_build": True, "cuda_version": "12.5.1", "cudnn_version": "9"},
        "gpus": [],
        "cpu_model": "test cpu",
        "cpu_features": {"avx2": True},
        "logical_cores": 16,
        "cgroup_cpus": None,
        "ram_total_bytes": 64 * 2**30,
        "ram_available_bytes": 60 * 2**30,
        "cgroup_memory_bytes": None,
        "nvidia_smi": None,
    }
    facts.update(overrides)
    return environment.EnvironmentReport(**facts)


def test_cpu_features_are_read_from_the_first_processor():
    model, features = environment.read_cpu_features(CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert features["avx2"] and features["fma"] and features["avx512f"] and features["amx_tile"]
    assert not features["avx512_bf16"]


ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm asimddp sve i8mm bf16
CPU implementer\t: 0x41
"""


def test_arm_features_neon_sve_bf16_i8mm_are_read_from_the_features_line():
    _, features = environment.read_cpu_features(ARM_CPUINFO)
    assert set(features) == set(environment.ARM_FEATURES)
    assert features["asimd"] and features["sve"] and features["bf16"] and features["i8mm"]


def test_an_avx2_laptop_without_avx512_has_avx2_and_no_avx512():
    laptop = "model name\t: 11th Gen Intel(R) Core(TM) i7\nflags\t\t: fpu sse2 avx avx2 fma avx_vnni\n"
    _, features = environment.read_cpu_features(laptop)
    assert features["avx2"] and features["fma"] and features["avx_vnni"]
    assert not (features["avx512f"] or features["avx512_vnni"] or features["avx512_bf16"] or features["amx_tile"])


def test_the_report_says_whether_onednn_is_on_and_what_that_changes():
    on, off = make_report(onednn=True), make_report(onednn=False, cpu_features={"avx2": True, "avx512f": False})
    assert "oneDNN on" in on.one_line() and "oneDNN off" in off.one_line()
    assert "allocator keeps statistics" in on.to_text()
    assert "resident memory" in off.to_text() and "keeps no statistics" in off.to_text()
    assert "avx2: Eigen's float32 kernels" in off.to_text() and "avx512f:" not in off.to_text()


def test_doctor_reports_onednn_off_when_forced_off():
    env = {**environment.os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "course_lib", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "oneDNN        off (TF_ENABLE_ONEDNN_OPTS=0)" in result.stdout
    assert "CPU features  " in result.stdout and ("avx2=" in result.stdout or "asimd=" in result.stdout)


def test_cpu_features_of_a_cpu_without_flags_are_all_false():
    model, features = environment.read_cpu_features("processor : 0\n")
    assert model == "unknown"
    assert not any(features.values())


def test_cgroup_v2_limits_are_read(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "memory.max").write_text(f"{2 * 2**30}\n")
    assert cgroups.read_cgroup_limits(tmp_path) == (1.5, 2 * 2**30)


def test_unlimited_cgroup_v2_reads_as_none(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroups.read_cgroup_limits(tmp_path) == (None, None)


def test_cgroup_v1_limits_are_read(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(str(2**63 - 4096))  # v1's "unlimited"
    assert cgroups.read_cgroup_limits(tmp_path) == (1.0, None)


def test_missing_cgroup_files_mean_no_limits(tmp_path):
    assert cgroups.read_cgroup_limits(tmp_path) == (None, None)


V1_MEMBERSHIP = "4:memory:/process_api/job7\n2:cpu,cpuacct:/grading/student3\n0::/\n"


def test_v1_limits_of_a_nested_cgroup_come_from_the_process_own_folder(tmp_path):
    """Outside a container namespace the root files hold the host's (no) limits; ours are deeper."""
    cpu = tmp_path / "cpu,cpuacct"
    (cpu / "grading" / "student3").mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / "grading" / "student3" / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "grading" / "student3" / "cpu.cfs_period_us").write_text("100000\n")
    memory = tmp_path / "memory"
    (memory / "process_api" / "job7").mkdir(parents=True)
    (memory / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
    (memory / "process_api" / "job7" / "memory.limit_in_bytes").write_text(f"{2 * 2**30}\n")
    assert cgroups.read_cgroup_limits(tmp_path, V1_MEMBERSHIP) == (0.5, 2 * 2**30)


def test_the_tightest_limit_on_the_way_to_the_root_wins(tmp_path):
    """A parent's limit binds its children even when the child's own file says "max"."""
    (tmp_path / "user.slice" / "lab").mkdir(parents=True)
    (tmp_path / "user.slice" / "cpu.max").write_text("100000 100000\n")
    (tmp_path / "user.slice" / "memory.max").write_text(f"{3 * 2**30}\n")
    (tmp_path / "user.slice" / "lab" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "user.slice" / "lab" / "memory.max").write_text(f"{4 * 2**30}\n")
    assert cgroups.read_cgroup_limits(tmp_path, "0::/user.slice/lab\n") == (1.0, 3 * 2**30)


def test_a_container_that_sees_its_cgroup_at_the_root_reads_the_root(tmp_path):
    """Without a cgroup namespace /proc/self/cgroup names a path the container cannot see."""
    (tmp_path / "memory.max").write_text(f"{2 * 2**30}\n")
    assert cgroups.read_cgroup_limits(tmp_path, "0::/kubepods/pod42/abc\n") == (None, 2 * 2**30)


def test_cgroup_membership_lines_are_parsed_per_controller():
    paths = cgroups.cgroup_paths(V1_MEMBERSHIP + "garbage\n")
    assert paths["memory"] == "/process_api/job7"
    assert paths["cpu"] == paths["cpuacct"] == paths["cpu,cpuacct"] == "/grading/student3"
    assert paths[""] == "/"


def test_usable_resources_follow_the_container_limits():
    report = make_report(cgroup_cpus=1.0, cgroup_memory_bytes=2 * 2**30)
    assert report.usable_cpus == 1.0
    assert report.usable_memory_bytes == 2 * 2**30
    assert "1 cores" in report.one_line() and "2.0 GiB" in report.one_line()


def test_a_healthy_cpu_machine_has_no_problems():
    assert environment.diagnose(make_report()) == []


def test_driver_without_gpu_on_a_cpu_build_says_to_install_the_cuda_extra():
    report = make_report(nvidia_smi="550.54, NVIDIA H100, 81559 MiB", build={"is_cuda_build": False})
    (problem,) = environment.diagnose(report)
    assert "sees no GPU" in problem.what
    assert "tensorflow[and-cuda]" in problem.fix


def test_driver_without_gpu_names_the_missing_cuda_library():
    report = make_report(nvidia_smi="550.54", missing_cuda_libraries=["libcudnn.so.9"])
    (problem,) = environment.diagnose(report)
    assert "libcudnn.so.9" in problem.fix and "12.5.1" in problem.fix


def test_container_limits_below_the_host_are_reported_with_a_fix():
    problems = environment.diagnose(make_report(cgroup_cpus=1.0, cgroup_memory_bytes=2 * 2**30))
    assert len(problems) == 2
    assert any("limit_threads_to_quota" in p.fix for p in problems)
    assert any("usable_memory_bytes" in p.fix for p in problems)


def test_an_old_tensorflow_is_reported():
    (problem,) = environment.diagnose(make_report(tensorflow="2.14.0"))
    assert "older" in problem.what and "make lab" in problem.fix


def test_collect_measures_this_machine():
    import tensorflow as tf

    report = environment.collect()
    assert report.tensorflow == tf.__version__
    assert report.keras.startswith("3.")
    assert "is_cuda_build" in report.build
    assert len(report.gpus) == len(tf.config.list_physical_devices("GPU"))
    assert 0 < report.usable_cpus <= report.logical_cores
    assert 0 < report.usable_memory_bytes <= report.ram_total_bytes
    text = report.to_text()
    assert f"TensorFlow    {tf.__version__}" in text and "CPU features" in text


def test_gpu_memory_limit_rejects_a_non_positive_size():
    with pytest.raises(CourseError, match="positive number of megabytes"):
        environment.set_gpu_memory_limit(0)


def test_doctor_prints_the_report():
    result = subprocess.run(
        [sys.executable, "-m", "course_lib", "doctor"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Course environment report" in result.stdout
    assert "TensorFlow    2.21" in result.stdout
    assert "  oneDNN        on" in result.stdout or "  oneDNN        off" in result.stdout


def test_unknown_command_exits_2_with_usage():
    result = subprocess.run(
        [sys.executable, "-m", "course_lib", "frobnicate"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr and "doctor" in result.stderr


@pytest.mark.parametrize(
    ("facts", "exit_code"),
    [
        ({"cgroup_cpus": 1.0, "cgroup_memory_bytes": 2 * 2**30}, 0),  # limits: sized from, not a fault
        ({"nvidia_smi": "550.54", "build": {"is_cuda_build": False}}, 1),  # a GPU TensorFlow cannot use
    ],
)
def test_doctor_strict_fails_on_faults_not_on_container_limits(monkeypatch, capsys, facts, exit_code):
    report = make_report(**facts)
    report.problems = environment.diagnose(report)
    monkeypatch.setattr(environment, "collect", lambda: report)
    assert environment.main(["--strict"]) == exit_code
    assert environment.main([]) == 0
    out = capsys.readouterr().out
    assert "Problems:" in out
    assert ("a limit to respect; --strict passes" in out) == (exit_code == 0)


def test_memory_left_is_the_limit_minus_the_working_set_v1(tmp_path):
    job = tmp_path / "memory" / "jobs" / "7"
    job.mkdir(parents=True)
    (job / "memory.limit_in_bytes").write_text(f"{2 * 2**30}\n")
    (job / "memory.usage_in_bytes").write_text(f"{3 * 2**29}\n")  # 1.5 GiB charged...
    (job / "memory.stat").write_text(f"cache 1\ntotal_inactive_file {2**29}\n")  # ...0.5 GiB of it reclaimable
    assert cgroups.memory_left_bytes(tmp_path, "4:memory:/jobs/7\n") == 2**30


def test_memory_left_is_the_limit_minus_the_working_set_v2(tmp_path):
    (tmp_path / "memory.max").write_text(f"{2 * 2**30}\n")
    (tmp_path / "memory.current").write_text(f"{7 * 2**28}\n")
    (tmp_path / "memory.stat").write_text(f"anon 5\ninactive_file {2**28}\n")
    assert cgroups.memory_left_bytes(tmp_path, "0::/\n") == 2**29


def test_memory_left_falls_back_to_this_process_rss_without_a_usage_file(tmp_path):
    limit = cgroups.psutil.virtual_memory().available // 2  # binding: below what the host has available
    (tmp_path / "memory.max").write_text(f"{limit}\n")
    rss = cgroups.psutil.Process().memory_info().rss
    assert abs(cgroups.memory_left_bytes(tmp_path, "0::/\n") - (limit - rss)) < 2**26


def test_without_a_limit_memory_left_is_what_the_host_has_available(tmp_path):
    left = cgroups.memory_left_bytes(tmp_path, "0::/\n")
    assert abs(left - cgroups.psutil.virtual_memory().available) < 2**28

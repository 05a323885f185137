"""One report of what TensorFlow sees on this machine, and what to fix when it is wrong.

Infrastructure questions ("why is there no GPU?", "why is it slow on Binder?") start with the same
facts: versions, what TF was built against, the devices it found, CPU features, and the memory and
CPU limits of the container (cgroup), which TF does not read. `python -m course_lib doctor` prints it.

The facts come from course_lib.cgroups (container limits) and TensorFlow (imported by `collect`, not
at import time); the settings that act on them (GPU memory growth, thread pools) are in course_lib.devices.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from course_lib.cgroups import read_cgroup_limits as read_cgroup_limits
from course_lib.devices import enable_memory_growth as enable_memory_growth
from course_lib.devices import limit_threads_to_quota
from course_lib.devices import set_gpu_memory_limit as set_gpu_memory_limit

# The notebooks call the three device settings and `read_cgroup_limits` through this module, the one
# their setup cell imports; they live in course_lib.devices and course_lib.cgroups.

X86_FEATURES = (
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
ARM_FEATURES = ("asimd", "asimddp", "sve", "bf16", "i8mm")
CPU_FEATURES = X86_FEATURES
FEATURE_EFFECTS = {
    "avx": "the official x86 wheels need it: without it `import tensorflow` dies (Illegal instruction)",
    "avx2": "Eigen's float32 kernels (TF without oneDNN) use it with FMA: the baseline of every recent x86 laptop",
    "avx512f": "TF 2.21 turns oneDNN on by default on CPUs with AVX-512-class features like this one",
    "avx512_vnni": "fast int8 dot products: int8 TFLite and quantized oneDNN kernels gain most",
    "avx_vnni": "int8 dot products without AVX-512 (Alder Lake and later)",
    "avx512_bf16": "bfloat16 in hardware: mixed_bfloat16 can pay off (with oneDNN)",
    "amx_tile": "matrix tiles (Sapphire Rapids+): oneDNN's fastest bf16 and int8 matmuls",
    "asimd": "NEON, the baseline SIMD of aarch64: XNNPACK (TFLite) and Eigen use it",
    "sve": "scalable vectors: oneDNN with Arm Compute Library uses them (Graviton 3+, Neoverse V1+)",
    "bf16": "bfloat16 instructions on ARM: mixed_bfloat16 can pay off with oneDNN",
    "i8mm": "int8 matrix multiply on ARM: int8 TFLite and quantized kernels gain",
}
"""What each CPU feature the report reads changes for TensorFlow (doctor prints it for the ones present)."""
MIN_TF_VERSION = (2, 21)
# Shared libraries a CUDA build of TF loads at start; a missing one is the usual "no GPU" cause.
CUDA_LIBRARIES = {"cudart": "libcudart.so.12", "cublas": "libcublas.so.12", "cudnn": "libcudnn.so.9"}
# With more threads than the CPU quota, the kernel's CFS throttling stalls every thread once the
# quota of a 100 ms period is spent: tail latencies jump (docs/benchmarks.md measures it).
QUOTA_FIX = "call `course_lib.environment.limit_threads_to_quota()` before running models"


@dataclass
class Problem:
    """Something wrong with the environment and what to do about it."""

    what: str
    fix: str
    # False for facts to respect rather than faults to repair (container limits): printed, but
    # `doctor --strict` does not fail on them, or it would fail in every pod that has limits.
    blocking: bool = True


@dataclass
class EnvironmentReport:
    """The facts `doctor` prints; every field is measured, none assumed."""

    python: str
    platform: str
    tensorflow: str
    keras: str
    build: dict
    gpus: list[dict]
    cpu_model: str
    cpu_features: dict[str, bool]
    logical_cores: int
    cgroup_cpus: float | None
    ram_total_bytes: int
    ram_available_bytes: int
    cgroup_memory_bytes: int | None
    nvidia_smi: str | None
    missing_cuda_libraries: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Whether TensorFlow's oneDNN CPU kernels are on in this process (None: TensorFlow cannot say).
    onednn: bool | None = None

    @property
    def cpu_quota_below_host(self) -> bool:
        """True when the container may use fewer CPUs than TensorFlow sees (it sizes threads per core)."""
        return self.cgroup_cpus is not None and self.cgroup_cpus < self.logical_cores

    @property
    def usable_cpus(self) -> float:
        """Cores this process may really use: the cgroup quota when it is lower than the host."""
        if self.cgroup_cpus is not None:
            return min(self.cgroup_cpus, self.logical_cores)
        return float(self.logical_cores)

    @property
    def usable_memory_bytes(self) -> int:
        """Memory this process may really use: the container limit when it is lower than the host."""
        if self.cgroup_memory_bytes is not None:
            return min(self.cgroup_memory_bytes, self.ram_total_bytes)
        return self.ram_total_bytes

    def one_line(self) -> str:
        """A single line for a notebook's setup cell."""
        device = ", ".join(g["name"] for g in self.gpus) if self.gpus else "CPU only"
        features = "+".join(f for f, present in self.cpu_features.items() if present) or "none"
        onednn = {True: " | oneDNN on", False: " | oneDNN off", None: ""}[self.onednn]
        return (
            f"TF {self.tensorflow} | Keras {self.keras} | Python {self.python} | {device} | "
            f"{self.usable_cpus:g} cores | {self.usable_memory_bytes / 2**30:.1f} GiB | CPU {features}{onednn}"
        )

    def to_text(self) -> str:
        """The full report, with problems and fixes last."""
        build = self.build
        lines = [
            "Course environment report",
            f"  Python        {self.python} on {self.platform}",
            f"  TensorFlow    {self.tensorflow} (Keras {self.keras})",
            (
                f"  Built with    CUDA {build.get('cuda_version', '-')}, cuDNN {build.get('cudnn_version', '-')}, "
                f"CUDA build: {build.get('is_cuda_build', False)}"
            ),
            f"  CPU           {self.cpu_model}",
            "  CPU features  " + ", ".join(f"{name}={'yes' if ok else 'no'}" for name, ok in self.cpu_features.items()),
            *[
                f"                {name}: {FEATURE_EFFECTS[name]}"
                for name, ok in self.cpu_features.items()
                if ok and name in FEATURE_EFFECTS
            ],
            f"  oneDNN        {onednn_text(self.onednn)}",
            f"  Cores         {self.logical_cores} logical"
            + (f", cgroup quota {self.cgroup_cpus:g}" if self.cgroup_cpus is not None else ""),
            f"  Memory        {self.ram_total_bytes / 2**30:.1f} GiB total, "
            f"{self.ram_available_bytes / 2**30:.1f} GiB available"
            + (
                f", cgroup limit {self.cgroup_memory_bytes / 2**30:.1f} GiB"
                if self.cgroup_memory_bytes is not None
                else ""
            ),
            f"  NVIDIA driver {self.nvidia_smi or 'not found (no nvidia-smi)'}",
        ]
        if self.gpus:
            for gpu in self.gpus:
                memory = gpu.get("memory_bytes")
                memory_text = f", {memory / 2**30:.1f} GiB" if memory else ""
                lines.append(
                    f"  GPU           {gpu['name']}: {gpu.get('device_name', '?')}, "
                    f"compute capability {gpu.get('compute_capability', '?')}{memory_text}"
                )
        else:
            lines.append("  GPU           none visible to TensorFlow")
        if self.problems:
            lines.append("Problems:")
            for problem in self.problems:
                kind = "" if problem.blocking else " (a limit to respect; --strict passes)"
                lines.append(f"  - {problem.what}{kind}\n    fix: {problem.fix}")
        else:
            lines.append("No problems found.")
        return "\n".join(lines)


def read_cpu_features(cpuinfo: str | None = None) -> tuple[str, dict[str, bool]]:
    """CPU model name and which SIMD features that matter to TensorFlow it has (Linux /proc/cpuinfo).

    x86 lists its `flags` (AVX2, AVX-512, VNNI, BF16, AMX: X86_FEATURES); aarch64 its `Features`
    (NEON is `asimd`, then SVE, BF16, I8MM: ARM_FEATURES). Elsewhere every feature reads as absent.
    """
    arm = platform.machine().lower() in ("aarch64", "arm64")
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            names = ARM_FEATURES if arm else X86_FEATURES
            return platform.processor() or "unknown", dict.fromkeys(names, False)
    model, flags = "unknown", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model == "unknown":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
            arm = key == "Features"
    return model, {name: name in flags for name in (ARM_FEATURES if arm else X86_FEATURES)}


def onednn_enabled() -> bool | None:
    """Whether TensorFlow's oneDNN CPU kernels are on in this process; None when TensorFlow cannot say.

    TensorFlow 2.21 decides once, at start: `TF_ENABLE_ONEDNN_OPTS=1` or `0` if set, otherwise on
    for x86 CPUs with AVX-512-class features (and some ARM Neoverse CPUs), off on the rest (AVX2 laptops).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def onednn_text(onednn: bool | None) -> str:
    """What oneDNN being on or off changes for the course, in one line for the report."""
    forced = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    why = f"TF_ENABLE_ONEDNN_OPTS={forced}" if forced is not None else "TensorFlow's default for this CPU"
    if onednn is None:
        return "unknown (this TensorFlow does not say)"
    if onednn:
        return (
            f"on ({why}): oneDNN CPU kernels (float results differ from Eigen's in the last bits); "
            "TensorFlow's CPU allocator keeps statistics (allocations of 256 KiB or more), so "
            "course_lib.memory measures CPU memory with it"
        )
    return (
        f"off ({why}): Eigen CPU kernels; TensorFlow's CPU allocator keeps no statistics, so "
        "course_lib.memory measures CPU memory as the process's resident memory (Linux) instead, "
        "and mixed_bfloat16 gets no oneDNN bf16 kernels"
    )


def find_missing_cuda_libraries() -> list[str]:
    """CUDA libraries a CUDA build of TF needs that the dynamic loader cannot find."""
    missing = []
    for name, soname in CUDA_LIBRARIES.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            if not _pip_cuda_library_present(name):
                missing.append(soname)
    return missing


def _pip_cuda_library_present(name: str) -> bool:
    """True when `tensorflow[and-cuda]` installed the library as a pip wheel (nvidia-*)."""
    import importlib.util

    spec = importlib.util.find_spec(f"nvidia.{'cuda_runtime' if name == 'cudart' else name}")
    return spec is not None


def nvidia_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi, or None when there is no driver."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "nvidia-smi present but did not answer"
    return (
        result.stdout.strip().splitlines()[0]
        if result.returncode == 0 and result.stdout.strip()
        else (f"nvidia-smi failed: {result.stderr.strip()[:200]}")
    )


def _gpu_details(tf) -> list[dict]:
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(
            {
                "name": device.name,
                "device_name": details.get("device_name"),
                "compute_capability": details.get("compute_capability"),
            }
        )
    return gpus


def diagnose(report: EnvironmentReport) -> list[Problem]:
    """Turn the facts into problems with fixes; pure, so each rule is testable."""
    problems = []
    build = report.build
    tf_version = tuple(int(p) for p in report.tensorflow.split(".")[:2] if p.isdigit())
    if tf_version and tf_version < MIN_TF_VERSION:
        problems.append(
            Problem(
                f"TensorFlow {report.tensorflow} is older than the course's {'.'.join(map(str, MIN_TF_VERSION))}",
                "recreate the environment with `make lab` (it installs the pinned versions from requirements.txt)",
            )
        )
    if report.nvidia_smi and not report.gpus:
        if not build.get("is_cuda_build"):
            fix = "this TensorFlow was built without CUDA: `pip install 'tensorflow[and-cuda]==2.21.0'`"
        elif report.missing_cuda_libraries:
            fix = (
                f"TensorFlow was built against CUDA {build.get('cuda_version')} / cuDNN "
                f"{build.get('cudnn_version')} but cannot load {', '.join(report.missing_cuda_libraries)}: "
                "`pip install 'tensorflow[and-cuda]==2.21.0'` brings them as pip packages, or install "
                "matching CUDA/cuDNN and add them to LD_LIBRARY_PATH"
            )
        else:
            fix = (
                "the driver is there and the CUDA libraries load: check that the driver supports CUDA "
                f"{build.get('cuda_version')} (`nvidia-smi` header) and that CUDA_VISIBLE_DEVICES is not empty"
            )
        problems.append(Problem("an NVIDIA driver is installed but TensorFlow sees no GPU", fix))
    if report.cgroup_memory_bytes is not None and report.cgroup_memory_bytes < report.ram_total_bytes:
        problems.append(
            Problem(
                f"this container may use only {report.cgroup_memory_bytes / 2**30:.1f} GiB of the host's "
                f"{report.ram_total_bytes / 2**30:.1f} GiB, and TensorFlow does not know it",
                "size batches from `report.usable_memory_bytes`, not from the host memory "
                "(`course_lib.memory.fit_batch_sizes` does it for a batch-size sweep)",
                blocking=False,
            )
        )
    if report.cpu_quota_below_host:
        problems.append(
            Problem(
                f"this container may use {report.cgroup_cpus:g} CPUs but TensorFlow sees {report.logical_cores}",
                QUOTA_FIX,
                blocking=False,
            )
        )
    return problems


def collect() -> EnvironmentReport:
    """Measure the environment now (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    cpu_model, features = read_cpu_features()
    cgroup_cpus, cgroup_memory = read_cgroup_limits()
    memory = psutil.virtual_memory()
    build = dict(tf.sysconfig.get_build_info())
    driver = nvidia_driver()
    report = EnvironmentReport(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        tensorflow=tf.__version__,
        keras=keras.__version__,
        build=build,
        gpus=_gpu_details(tf),
        cpu_model=cpu_model,
        cpu_features=features,
        logical_cores=os.cpu_count() or 1,
        cgroup_cpus=cgroup_cpus,
        ram_total_bytes=memory.total,
        ram_available_bytes=memory.available,
        cgroup_memory_bytes=cgroup_memory,
        nvidia_smi=driver,
        missing_cuda_libraries=find_missing_cuda_libraries() if driver else [],
        onednn=onednn_enabled(),
    )
    report.problems = diagnose(report)
    return report


def setup_notebook(quiet: bool = True) -> EnvironmentReport:
    """The setup cell of every notebook: quiet logs, check versions, print one line, return the report."""
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = collect()
    print(report.one_line())
    problems = report.problems
    if report.cpu_quota_below_host:
        import tensorflow as tf

        threads = limit_threads_to_quota(report)
        if tf.config.threading.get_intra_op_parallelism_threads() == threads:
            print(
                f"TensorFlow's thread pools sized to this container's {report.cgroup_cpus:g}-CPU quota: "
                f"{threads} thread(s), not one per host core ({report.logical_cores}), which would be throttled"
            )
            problems = [problem for problem in problems if problem.fix != QUOTA_FIX]
    for problem in problems:
        print(f"WARNING: {problem.what}. Fix: {problem.fix}")
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m course_lib doctor`: print the report; with --strict, exit 1 when a fault is found."""
    parser = argparse.ArgumentParser(prog="python -m course_lib doctor", description=__doc__)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 if a problem to fix is found (container limits only inform)",
    )
    args = parser.parse_args(argv)
    report = collect()
    print(report.to_text())
    sys.stdout.flush()
    return 1 if args.strict and any(problem.blocking for problem in report.problems) else 0

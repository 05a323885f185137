"""TensorFlow's devices: GPU memory settings, thread pools sized to the container, device names.

Every function imports TensorFlow when called, not when this module is imported, so
`python -m course_lib doctor` still runs (and reports) when TensorFlow is broken.
"""

from __future__ import annotations

from typing import Any

from course_lib import cgroups
from course_lib.errors import CourseError


def enable_memory_growth() -> list[str]:
    """Let TF allocate GPU memory as needed instead of grabbing it all; returns the GPUs changed.

    Must run before the first op touches the GPU: TF refuses afterwards, and we say so.
    """
    import tensorflow as tf

    changed = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:
            raise CourseError(
                "memory growth must be set before TensorFlow initializes the GPU: restart the kernel "
                f"and call enable_memory_growth() first ({error})"
            ) from None
        changed.append(gpu.name)
    return changed


def set_gpu_memory_limit(megabytes: int, gpu_index: int = 0) -> bool:
    """Cap TF's memory on one GPU (a logical device of `megabytes`); False when there is no GPU."""
    import tensorflow as tf

    if megabytes <= 0:
        raise CourseError(f"memory limit must be a positive number of megabytes, got {megabytes}")
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    if gpu_index >= len(gpus):
        raise CourseError(f"GPU index {gpu_index} does not exist: TensorFlow sees {len(gpus)} GPU(s)")
    try:
        tf.config.set_logical_device_configuration(
            gpus[gpu_index], [tf.config.LogicalDeviceConfiguration(memory_limit=megabytes)]
        )
    except RuntimeError as error:
        raise CourseError(
            "a GPU memory limit must be set before TensorFlow initializes the GPU: restart the kernel "
            f"and set it first ({error})"
        ) from None
    return True


def limit_threads_to_quota(report: Any = None) -> int:
    """Size TF's thread pools to the container's CPU quota; returns the thread count used.

    `report` is an `environment.EnvironmentReport` already collected (its `usable_cpus`); without
    one the quota is read from the cgroup now.
    """
    import tensorflow as tf

    cpus = report.usable_cpus if report is not None else cgroups.usable_cpus()
    threads = max(1, int(cpus))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(threads, 2)))
    except RuntimeError:
        pass  # already initialized: keep TF's own choice rather than fail a notebook
    return threads


def device_name(device: str) -> str:
    """TensorFlow's short device name: '/device:GPU:1' -> 'GPU:1', 'gpu' -> 'GPU:0'."""
    name = device.strip()
    for prefix in ("/device:", "/physical_device:", "/"):
        name = name.removeprefix(prefix)
    kind, _, index = name.partition(":")
    return f"{kind.upper()}:{index or '0'}"


def materialize(result: Any) -> Any:
    """Turn every tensor in `result` into a numpy array, which waits until the device has finished.

    TensorFlow dispatches GPU work asynchronously: without this, a timer can stop before the
    kernels ran. Copying the result to the host is also what a caller of a served model pays.
    Anything that is not a tensor (numpy arrays, HTTP responses) is returned unchanged.
    """
    import tensorflow as tf

    def to_host(value: Any) -> Any:
        return value.numpy() if isinstance(value, (tf.Tensor, tf.Variable)) else value

    return tf.nest.map_structure(to_host, result)

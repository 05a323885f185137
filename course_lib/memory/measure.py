"""Peak memory while a function runs, measured the best way this machine allows, and how it was measured.

TensorFlow's allocator statistics where it keeps them (every GPU; CPUs with oneDNN on), else the
process's resident memory high-water mark (Linux), else nothing, said plainly. The estimator
(course_lib.memory.estimate) predicts; this module checks a prediction against the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from course_lib.devices import device_name, materialize
from course_lib.units import MIB

PEAK_METHODS = ("allocator", "process-rss", "none")
"""How `measure_peak` got its number: TensorFlow's allocator statistics, the process's resident memory
high-water mark (Linux), or nothing."""


@dataclass(frozen=True)
class PeakMeasurement:
    """One peak-memory measurement and how it was taken; `bytes` is None when nothing could be measured.

    `method` is one of PEAK_METHODS; `note` says what the number counts (or why there is none), so a
    table can print it next to the figure instead of leaving a reader to guess.
    """

    bytes: int | None
    method: str
    device: str
    note: str

    def __str__(self) -> str:
        figure = "n/a" if self.bytes is None else f"{self.bytes / MIB:,.2f} MiB"
        return f"{figure} ({self.method} on {self.device}: {self.note})"


def _proc_status_bytes(key: str) -> int:
    """A `kB` line of /proc/self/status (VmRSS: resident now, VmHWM: resident high-water mark) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {key} line")


def _reset_rss_peak() -> str | None:
    """Hand freed heap back to the OS and reset VmHWM to VmRSS; None on success, else why it failed.

    Writing "5" to /proc/self/clear_refs (Linux 4.0+) resets this process's resident high-water mark.
    `malloc_trim(0)` first, so pages malloc kept from earlier calls do not hide the new growth.
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (musl, macOS): nothing to trim, the peak is only less tight
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        _proc_status_bytes("VmHWM")
    except OSError as error:
        return f"the process's peak resident memory cannot be reset here ({error})"
    return None


RSS_NOTE = (
    "TensorFlow's CPU allocator keeps no statistics without oneDNN, so this is the growth of the "
    "process's resident memory (Linux VmHWM), what a container's memory limit counts: pages, not "
    "tensors, so tensors of many MiB read a little above their size (malloc's arenas, kernels' "
    "buffers) and small ones can read below it (they reuse pages malloc already holds)"
)


def measure_peak(fn: Callable[[], Any], device: str = "GPU:0", include_resident: bool = False) -> PeakMeasurement:
    """Peak memory while `fn()` runs on `device`, measured the best way this machine allows.

    1. **allocator**: TensorFlow's allocator statistics (`tf.config.experimental.get_memory_info`).
       Every GPU keeps them. On CPU only the oneDNN allocator does, and TensorFlow 2.21 turns oneDNN
       on by default only on CPUs with AVX-512-class features (or with `TF_ENABLE_ONEDNN_OPTS=1`);
       it counts only allocations of 256 KiB or more (smaller ones go to plain malloc), so on CPU it
       is a lower bound. `TF_CPU_ALLOCATOR_USE_BFC=true`, set before TensorFlow starts, gives the
       CPU allocator statistics too, without oneDNN.
    2. **process-rss** (CPU:0 without allocator statistics, Linux): the growth of the process's
       resident memory high-water mark, reset just before the call (after `malloc_trim`). True on
       every Linux CPU, x86-64 or ARM, and what a container's memory limit counts; but it counts
       pages, not tensors: tensors of many MiB read a little above their size (malloc's per-thread
       arenas, a kernel's scratch buffers), small ones can read below it (they reuse pages malloc
       already holds). We do not switch oneDNN on to get a counter: that changes the kernels (and
       their temporary buffers) being measured, and the student's CPU would not run those.
    3. **none**: no such device, or no counter at all (macOS, Windows CPU without oneDNN): `bytes`
       is None and `note` says why. Nothing is estimated in its place.

    By default the bytes in use before the call (weights, the input) are subtracted, so the result
    compares with `activations_peak_inference_bytes`. With `include_resident=True` it is the
    absolute peak: TensorFlow's tensors for the allocator, the whole process for process-rss.
    Warm `fn` up first: a first call also traces and autotunes.
    """
    import tensorflow as tf

    name = device_name(device)
    present = [device_name(d.name) for d in tf.config.list_logical_devices()]
    if name not in present:
        return PeakMeasurement(
            None,
            "none",
            name,
            f"no device {name} here (devices: {', '.join(present)}); "
            "a GPU is needed to measure GPU memory, or pass device='CPU:0'",
        )
    try:
        tf.config.experimental.reset_memory_stats(name)
        before = tf.config.experimental.get_memory_info(name)["current"]
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        if not name.startswith("CPU"):
            return PeakMeasurement(None, "none", name, f"the allocator of {name} keeps no statistics ({error})")
        why_not = _reset_rss_peak()
        if why_not:
            return PeakMeasurement(
                None, "none", name, f"TensorFlow's CPU allocator keeps no statistics without oneDNN, and {why_not}"
            )
        before = _proc_status_bytes("VmRSS")
        with tf.device(name):
            materialize(fn())
        peak = _proc_status_bytes("VmHWM")
        return PeakMeasurement(int(peak if include_resident else max(peak - before, 0)), "process-rss", name, RSS_NOTE)
    with tf.device(name):
        materialize(fn())
    peak = tf.config.experimental.get_memory_info(name)["peak"]
    if peak == 0:
        return PeakMeasurement(
            None,
            "none",
            name,
            f"the allocator of {name} recorded no allocations (with "
            "oneDNN, TensorFlow's CPU allocator counts only allocations of 256 KiB or more)",
        )
    counts = "TensorFlow's allocator" + (
        " (oneDNN on: allocations of 256 KiB or more)" if name.startswith("CPU") else ""
    )
    return PeakMeasurement(int(peak if include_resident else max(peak - before, 0)), "allocator", name, counts)


def measured_peak_bytes(
    fn: Callable[[], Any],
    device: str = "GPU:0",
    include_resident: bool = False,
    verbose: bool = True,
) -> int | None:
    """`measure_peak(fn, device, include_resident).bytes`: the peak growth (or absolute peak) in bytes.

    When `verbose`, says how the number was measured whenever it is not TensorFlow's own allocator
    (on a CPU without oneDNN: the process's resident memory), and why when there is no number (None).
    Use `measure_peak` to get the method and its note with the figure.
    """
    measurement = measure_peak(fn, device, include_resident)
    if verbose and measurement.bytes is None:
        print(f"measured_peak_bytes: {measurement.note}; returning None (nothing measured).")
    elif verbose and measurement.method != "allocator":
        print(f"measured_peak_bytes: measured as {measurement.method} on {measurement.device}: {measurement.note}.")
    return measurement.bytes

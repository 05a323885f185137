"""What fits where: the batch sizes that fit the memory this process has left, and the GPUs an estimate fits.

Both compare an estimate (course_lib.memory.estimate) with memory that exists: the container's
(course_lib.cgroups) or a catalogue of common data-centre GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from course_lib import cgroups
from course_lib.errors import CourseError
from course_lib.memory.estimate import DEFAULT_HEADROOM, MemoryEstimate, estimate_memory
from course_lib.shapes import check_batch_size
from course_lib.units import GIB, MIB

COMMON_GPUS = {
    "16 GB (T4, V100 16GB)": 16 * GIB,
    "24 GB (A10, L4, RTX 4090)": 24 * GIB,
    "40 GB (A100 40GB)": 40 * GIB,
    "48 GB (L40S, RTX A6000)": 48 * GIB,
    "80 GB (A100 80GB, H100)": 80 * GIB,
}
"""Memory sizes of common data-centre GPUs, smallest first (nominal; a little less is usable)."""


def fit_batch_sizes(
    model: Any,
    batch_sizes: Sequence[int],
    input_shape: Sequence[int] | None = None,
    available_bytes: int | None = None,
    headroom: float = DEFAULT_HEADROOM,
    eager: bool = False,
) -> tuple[int, ...]:
    """The batch sizes whose inference fits the memory left, smallest first; the others are dropped, loudly.

    On Binder (about 2 GB) a batch sized for the host gets the kernel OOM-killed ("the kernel
    died") and the run is lost. Each size's estimate (weights + peak live activations, x headroom)
    is checked against `available_bytes`, by default what the container's cgroup leaves this
    process (`cgroups.memory_left_bytes`). With `eager=True` the estimate is
    `eager_inference_bytes`: an eager call keeps every layer output. The smallest size is always
    kept, with a warning when even it does not fit.
    """
    sizes = sorted({int(size) for size in batch_sizes})
    if not sizes:
        raise CourseError("batch_sizes is empty: give at least one batch size, e.g. (1, 8, 32)")
    for size in batch_sizes:
        check_batch_size(size)
    available = cgroups.memory_left_bytes() if available_bytes is None else int(available_bytes)
    estimates = {size: estimate_memory(model, size, input_shape, headroom=headroom) for size in sizes}
    needed = {
        size: math.ceil((estimate.eager_inference_bytes if eager else estimate.inference_bytes) * headroom)
        for size, estimate in estimates.items()
    }
    kept = tuple(size for size in sizes if needed[size] <= available) or (sizes[0],)
    dropped = [size for size in sizes if size not in kept]
    left = f"{available / MIB:,.0f} MiB left"
    what = f"{model.name} called eagerly" if eager else model.name
    if dropped:
        print(
            f"WARNING: batch sizes {dropped} left out: {what} would need "
            f"{', '.join(f'{needed[s] / MIB:,.1f}' for s in dropped)} MiB, {left}. "
            "Run on a machine with more memory (or a GPU) to measure them."
        )
    if needed[kept[0]] > available:
        print(
            f"WARNING: even batch {kept[0]} needs {needed[kept[0]] / MIB:,.1f} MiB, {left}: "
            "the kernel may be killed. Restart the kernel to free memory, or use a smaller model."
        )
    elif not dropped:
        print(f"batch sizes {list(kept)} fit: {what} needs at most {needed[kept[-1]] / MIB:,.1f} MiB, {left}")
    return kept


def gpu_for(estimate: MemoryEstimate, gpus: Mapping[str, int] = COMMON_GPUS, training: bool = False) -> list[str]:
    """The GPUs (name -> memory bytes) whose memory holds the recommended amount, smallest first."""
    needed = estimate.recommended_training_bytes if training else estimate.recommended_inference_bytes
    return [name for name, size in sorted(gpus.items(), key=lambda item: item[1]) if size >= needed]

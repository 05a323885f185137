"""How much memory a Keras model needs: estimated from the model itself, checked by measurement.

The notebooks call everything through this package (`from course_lib import memory`); each job
lives in its own module:

- `course_lib.memory.estimate`: parameter, activation and training bytes read off the layer graph,
  the lecture's rule of thumb beside them (`estimate_memory`, `lecture_rule`, ...).
- `course_lib.memory.measure`: the peak a function really allocates, and how it was measured
  (`measure_peak`, `measured_peak_bytes`).
- `course_lib.memory.fit`: what fits where: batch sizes for the memory this container has left,
  GPUs for an estimate (`fit_batch_sizes`, `gpu_for`).
- `course_lib.memory.cli`: `python -m course_lib.memory`.
"""

from course_lib.memory.estimate import (
    DEFAULT_HEADROOM,
    DEFAULT_RUNTIME_OVERHEAD_BYTES,
    OPTIMIZER_SLOTS,
    LayerActivation,
    MemoryEstimate,
    activation_bytes_by_layer,
    dtype_size,
    estimate_memory,
    lecture_rule,
    optimizer_slots,
    param_bytes_by_dtype,
    param_bytes_for_dtype,
)
from course_lib.memory.fit import COMMON_GPUS, fit_batch_sizes, gpu_for
from course_lib.memory.measure import PEAK_METHODS, RSS_NOTE, PeakMeasurement, measure_peak, measured_peak_bytes
from course_lib.units import GIB, MIB

__all__ = [
    "COMMON_GPUS",
    "DEFAULT_HEADROOM",
    "DEFAULT_RUNTIME_OVERHEAD_BYTES",
    "GIB",
    "MIB",
    "OPTIMIZER_SLOTS",
    "PEAK_METHODS",
    "RSS_NOTE",
    "LayerActivation",
    "MemoryEstimate",
    "PeakMeasurement",
    "activation_bytes_by_layer",
    "dtype_size",
    "estimate_memory",
    "fit_batch_sizes",
    "gpu_for",
    "lecture_rule",
    "measure_peak",
    "measured_peak_bytes",
    "optimizer_slots",
    "param_bytes_by_dtype",
    "param_bytes_for_dtype",
]

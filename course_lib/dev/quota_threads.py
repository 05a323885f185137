"""Measure what a CPU quota does to TensorFlow's default thread pools, in a real cgroup.

TensorFlow starts one thread per host core. Under a CPU quota (Binder: 1 CPU) those threads spend
the quota early in each 100 ms CFS period and then all stall until the next one: the median call
looks fast and the tail is not. This times the same matmul in a cgroup with the quota, once with
TensorFlow's default threads and once with threads sized to the quota
(`devices.limit_threads_to_quota`), each in a fresh process. Needs root (a cgroup is made).

    python -m course_lib.dev.quota_threads [--cpus 1] [--size 1024] [--repeats 60]
"""

from __future__ import annotations

import argparse
import sys

from course_lib.dev.cgroup_sandbox import Sandbox
from course_lib.errors import CourseError

PROBE = """
import json, sys, time
import numpy as np
import tensorflow as tf
from course_lib import devices
size, repeats, sized = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "sized"
threads = devices.limit_threads_to_quota() if sized else None
a, b = tf.random.normal((size, size)), tf.random.normal((size, size))
matmul = tf.function(lambda: tf.linalg.matmul(a, b))
for _ in range(5):
    matmul().numpy()
samples = []
for _ in range(repeats):
    start = time.perf_counter()
    matmul().numpy()
    samples.append((time.perf_counter() - start) * 1000)
print(json.dumps({"threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
                  "p50_ms": float(np.percentile(samples, 50)), "p95_ms": float(np.percentile(samples, 95)),
                  "max_ms": max(samples)}))
"""


def measure(sandbox: Sandbox, size: int, repeats: int, sized: bool) -> dict:
    """One fresh process in the sandbox: TF's default threads, or threads sized to the quota."""
    return sandbox.python_json(PROBE, str(size), str(repeats), "sized" if sized else "default")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.dev.quota_threads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cpus", type=float, default=1.0, help="CPU quota of the cgroup")
    parser.add_argument("--size", type=int, default=1024, help="matrix size")
    parser.add_argument("--repeats", type=int, default=60, help="timed calls per run")
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox.create(4 * 2**30, args.cpus)
    except CourseError as error:
        print(f"quota_threads: {error}", file=sys.stderr)
        return 2
    with sandbox:
        print(f"{args.size}x{args.size} matmul, {args.repeats} calls, in a cgroup with a {args.cpus:g}-CPU quota")
        for sized in (False, True):
            row = measure(sandbox, args.size, args.repeats, sized)
            print(
                f"  threads {row['threads']!s:>7}: p50 {row['p50_ms']:7.2f} ms, p95 {row['p95_ms']:7.2f} ms, "
                f"max {row['max_ms']:7.2f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

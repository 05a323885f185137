"""The memory and CPU limits of this process's cgroup (its container), which TensorFlow does not read.

Binder gives about 1 CPU and 2 GB, but TensorFlow sees the host's cores and memory. This module reads
the limits and what is left of them, for cgroup v2 and v1, from /sys/fs/cgroup and /proc/self/cgroup;
it imports nothing heavy, so the environment report, the memory estimator's batch fitting and the
grading sandbox (course_lib.dev.cgroup_sandbox) all read cgroups the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil


def read_cgroup_limits(
    root: Path = Path("/sys/fs/cgroup"), membership: str | None = None
) -> tuple[float | None, int | None]:
    """CPU quota (cores) and memory limit (bytes) of this process's cgroup, None where unlimited.

    Binder gives about 1 CPU and 2 GB, but TF sees the host's cores and memory; batch sizes and
    thread counts must come from these limits instead. A container usually sees its own cgroup at
    `root`; a process in a nested cgroup (systemd slice, a grader's sandbox) finds its own in
    `membership` (the text of /proc/self/cgroup). Each level from there up to `root` may set a
    limit and the tightest one wins. Reads cgroup v2, then v1.
    """
    paths = cgroup_paths(membership)
    cpus = _tightest(_v2_cpus(level) for level in _levels(root, paths.get("", "/")))
    if cpus is None:
        cpus = _tightest(_v1_cpus(level) for level in _levels(cgroup_v1_cpu_root(root), paths.get("cpu", "/")))
    memory = _tightest(limit for _, limit, _ in _memory_levels(root, paths))
    return cpus, memory


# Per cgroup version: the limit, the usage, and the memory.stat key of file cache the kernel reclaims
# before it OOM-kills (usage minus it is the "working set" that the kubelet watches too).
MEMORY_FILES = {
    2: ("memory.max", "memory.current", "inactive_file"),
    1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
}


def _memory_levels(root: Path, paths: dict[str, str]) -> list[tuple[Path, int | None, int]]:
    """(folder, limit or None, cgroup version) from this process's memory cgroup up to the root."""
    for version, base, path in ((2, root, paths.get("", "/")), (1, root / "memory", paths.get("memory", "/"))):
        levels = [
            (level, _memory_limit(level / MEMORY_FILES[version][0]), version)
            for level in _levels(base, path)
            if (level / MEMORY_FILES[version][0]).exists()
        ]
        if levels:
            return levels
    return []


def working_set_bytes(folder: Path, version: int) -> int | None:
    """A cgroup's usage less its inactive file cache: what counts towards an OOM kill; None if unreadable."""
    _, usage_file, inactive_key = MEMORY_FILES[version]
    try:
        usage = int(read_cgroup_file(folder / usage_file))
    except ValueError:
        return None
    return usage - read_cgroup_counters(folder / "memory.stat").get(inactive_key, 0)


def memory_left_bytes(root: Path = Path("/sys/fs/cgroup"), membership: str | None = None) -> int:
    """Bytes this process may still allocate before its container (or the host) runs out.

    At each cgroup level with a limit: the limit minus that cgroup's working set (or, where the
    usage cannot be read, minus this process's resident memory); never more than the host has
    available. RSS alone misleads inside a cgroup: it counts shared library pages charged to
    whoever read them first, and misses what other processes in the container use.
    """
    left = psutil.virtual_memory().available
    for folder, limit, version in _memory_levels(root, cgroup_paths(membership)):
        if limit is not None:
            used = working_set_bytes(folder, version)
            left = min(left, limit - (psutil.Process().memory_info().rss if used is None else used))
    return max(0, left)


def cgroup_paths(proc_self_cgroup: str | None = None) -> dict[str, str]:
    """Controller name -> this process's cgroup path ("" is cgroup v2), from /proc/self/cgroup.

    Pass the file's text to read another process's (or a test's); None reads this process's now.
    """
    if proc_self_cgroup is None:
        proc_self_cgroup = read_cgroup_file(Path("/proc/self/cgroup"))
    paths: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        paths[controllers] = path
        for controller in controllers.split(","):
            paths.setdefault(controller, path)
    return paths


def cgroup_v1_cpu_root(root: Path) -> Path:
    """Where cgroup v1 mounts the cpu controller: alone, or joined with cpuacct."""
    return next((root / name for name in ("cpu", "cpu,cpuacct") if (root / name).is_dir()), root / "cpu")


def cgroup_folder(base: Path, path: str) -> Path:
    """base/path, or its nearest existing parent: a container may see its own cgroup at the root."""
    return next(iter(_levels(base, path)), base)


def read_cgroup_counters(file: Path) -> dict[str, int]:
    """A flat-keyed cgroup file ("name value" lines: memory.stat, memory.events, memory.oom_control)."""
    pairs = (line.split() for line in read_cgroup_file(file).splitlines())
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].lstrip("-").isdigit()}


def _levels(base: Path, path: str) -> list[Path]:
    """base/path and each of its parents up to base, those that exist (the innermost first)."""
    parts = [part for part in path.strip("/").split("/") if part and part != ".."]
    candidates = [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [candidate for candidate in candidates if candidate.is_dir()]


def _tightest(values: Iterable[float | int | None]) -> Any:
    limits = [value for value in values if value is not None]
    return min(limits) if limits else None


def read_cgroup_file(path: Path) -> str:
    """A cgroup file's text, "" when it is absent or unreadable (not every kernel has every file)."""
    try:
        return path.read_text()
    except OSError:
        return ""


def _v2_cpus(level: Path) -> float | None:
    try:
        quota, period = read_cgroup_file(level / "cpu.max").split()
        return None if quota == "max" else int(quota) / int(period)
    except ValueError:
        return None


def _v1_cpus(level: Path) -> float | None:
    try:
        quota_us = int(read_cgroup_file(level / "cpu.cfs_quota_us"))
        period_us = int(read_cgroup_file(level / "cpu.cfs_period_us"))
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _memory_limit(file: Path) -> int | None:
    text = read_cgroup_file(file).strip()
    if not text.isdigit() or int(text) >= 2**60:  # "max" in v2; v1 reports "unlimited" as a huge number
        return None
    return int(text)


def usable_cpus(root: Path = Path("/sys/fs/cgroup"), membership: str | None = None) -> float:
    """Cores this process may really use: the cgroup's CPU quota when it is lower than the host's cores."""
    cpus, _ = read_cgroup_limits(root, membership)
    cores = float(os.cpu_count() or 1)
    return cores if cpus is None else min(cpus, cores)

"""A real cgroup with a memory and CPU limit, for running commands as if in a small container.

Binder gives about 2 GB and 1 CPU, enforced by the container's cgroup: past the memory limit the
kernel's OOM killer ends the notebook's kernel ("the kernel died"). Peak RSS measured on a big
machine is only a hint; running inside a cgroup with the same limits is the check. This needs root
and a writable cgroup file system (v1, or v2 with the memory and cpu controllers delegated), as on
CI and lab VMs; elsewhere `Sandbox.create` says what to do instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_lib.cgroups import (
    MEMORY_FILES,
    cgroup_folder,
    cgroup_paths,
    cgroup_v1_cpu_root,
    read_cgroup_counters,
    read_cgroup_file,
)
from course_lib.errors import CourseError

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Per cgroup version: the peak usage since the last reset, and the file that counts OOM kills.
PEAK_FILES = {1: "memory.max_usage_in_bytes", 2: "memory.peak"}
EVENTS_FILES = {1: "memory.oom_control", 2: "memory.events"}


@dataclass
class Usage:
    """What the cgroup saw while a command ran: peak memory (page cache included) and OOM kills."""

    peak_bytes: int | None
    oom_kills: int


@dataclass
class Sandbox:
    """The cgroup folders created for one run (one for v2; memory and cpu folders for v1)."""

    version: int
    memory_dir: Path
    cpu_dir: Path
    owned: bool = True  # False for the cgroup this process already runs in: never removed

    @classmethod
    def current(cls, root: Path = CGROUP_ROOT, membership: str | None = None) -> Sandbox:
        """The cgroup this process runs in (Binder's container, a `docker run --memory` one)."""
        paths = cgroup_paths(membership)
        if (root / "cgroup.controllers").exists():
            folder = cgroup_folder(root, paths.get("", "/"))
            return cls(2, folder, folder, owned=False)
        return cls(
            1,
            cgroup_folder(root / "memory", paths.get("memory", "/")),
            cgroup_folder(cgroup_v1_cpu_root(root), paths.get("cpu", "/")),
            owned=False,
        )

    @classmethod
    def create(
        cls,
        memory_bytes: int,
        cpus: float,
        name: str | None = None,
        root: Path = CGROUP_ROOT,
        membership: str | None = None,
    ) -> Sandbox:
        """Make a cgroup with these limits: v1, a child of this process's own; v2, at the top of the tree."""
        if memory_bytes <= 0 or cpus <= 0:
            raise CourseError(f"limits must be positive: memory {memory_bytes} bytes, {cpus} CPUs")
        name = name or f"course-sandbox-{os.getpid()}"
        paths = cgroup_paths(membership)
        try:
            sandbox = (
                cls._make_v2(root, name) if (root / "cgroup.controllers").exists() else cls._make_v1(root, paths, name)
            )
            sandbox._write_limits(memory_bytes, cpus)
        except OSError as error:
            raise CourseError(
                f"cannot create a cgroup under {root} ({error.strerror}: {error.filename}). Run as root on a "
                "machine with a writable cgroup file system, or run the check inside a container that has the "
                "limits already: `docker run --memory 2g --cpus 1 ...` or `systemd-run --scope -p MemoryMax=2G "
                "-p CPUQuota=100% ...`, with `--in-place`"
            ) from None
        return sandbox

    @classmethod
    def _make_v2(cls, root: Path, name: str) -> Sandbox:
        # At the top of the hierarchy, where systemd enables the memory and cpu controllers: v2 cannot
        # enable them below a cgroup that holds processes, as this process's own cgroup does.
        folder = root / name
        folder.mkdir(exist_ok=True)
        available = (folder / "cgroup.controllers").read_text().split()
        if not {"memory", "cpu"} <= set(available):
            _remove_folder(folder)
            raise CourseError(
                f"cgroup v2 has not delegated the memory and cpu controllers to {folder.parent} (it offers: "
                f"{' '.join(available) or 'none'}): use `systemd-run --scope -p MemoryMax=2G -p CPUQuota=100% "
                "...` with `--in-place` instead"
            )
        return cls(2, folder, folder)

    @classmethod
    def _make_v1(cls, root: Path, paths: dict[str, str], name: str) -> Sandbox:
        memory_dir = root / "memory" / paths.get("memory", "/").strip("/") / name
        cpu_dir = cgroup_v1_cpu_root(root) / paths.get("cpu", "/").strip("/") / name
        memory_dir.mkdir(exist_ok=True)
        try:
            cpu_dir.mkdir(exist_ok=True)
        except OSError:
            _remove_folder(memory_dir)
            raise
        return cls(1, memory_dir, cpu_dir)

    def _write_limits(self, memory_bytes: int, cpus: float) -> None:
        period = 100_000
        quota = max(1000, round(cpus * period))
        (self.memory_dir / MEMORY_FILES[self.version][0]).write_text(str(memory_bytes))
        if self.version == 2:
            _write_if_present(self.memory_dir / "memory.swap.max", "0")  # Binder has no swap
            (self.cpu_dir / "cpu.max").write_text(f"{quota} {period}")
        else:
            _write_if_present(self.memory_dir / "memory.memsw.limit_in_bytes", str(memory_bytes))  # no swap
            (self.cpu_dir / "cpu.cfs_period_us").write_text(str(period))
            (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))

    def folders(self) -> list[Path]:
        return [self.memory_dir] if self.memory_dir == self.cpu_dir else [self.memory_dir, self.cpu_dir]

    def enter(self) -> None:
        """Move the calling process into the sandbox (children it starts stay in it)."""
        if not self.owned:
            return
        for folder in self.folders():
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def run(self, command: Sequence[str], **popen_args) -> tuple[int, Usage]:
        """Run `command` inside the sandbox; its exit code, and the peak memory and OOM kills of this run."""
        self.reset_peak()
        kills_before = self.usage().oom_kills
        completed = subprocess.run(list(command), preexec_fn=self.enter, check=False, **popen_args)
        usage = self.usage()
        return completed.returncode, Usage(usage.peak_bytes, usage.oom_kills - kills_before)

    def python_json(self, code: str, *args: str) -> Any:
        """Run a Python snippet in a fresh process inside the sandbox; the JSON its last line prints."""
        probe = subprocess.run(
            [sys.executable, "-c", code, *args], preexec_fn=self.enter, capture_output=True, text=True, check=False
        )
        if probe.returncode != 0:
            raise CourseError(f"a probe failed inside the cgroup: {probe.stderr.strip()[-500:]}")
        return json.loads(probe.stdout.strip().splitlines()[-1])

    def reset_peak(self) -> None:
        """Start the peak over (v1 always; v2 on kernels that allow it), so each run gets its own."""
        with contextlib.suppress(OSError):
            (self.memory_dir / PEAK_FILES[self.version]).write_text("0")

    def usage(self) -> Usage:
        """Peak memory since the last reset, and OOM kills since the sandbox was made."""
        try:
            peak: int | None = int(read_cgroup_file(self.memory_dir / PEAK_FILES[self.version]))
        except ValueError:
            peak = None
        return Usage(peak, read_cgroup_counters(self.memory_dir / EVENTS_FILES[self.version]).get("oom_kill", 0))

    def remove(self) -> None:
        """Kill whatever is left inside (a kernel papermill failed to stop) and delete the folders."""
        if not self.owned:
            return
        for folder in self.folders():
            for _ in range(50):
                if not folder.exists():
                    break
                pids = [int(pid) for pid in read_cgroup_file(folder / "cgroup.procs").split()]
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()


def _remove_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # a cgroup folder goes with its control files; any other folder stays


def _write_if_present(path: Path, text: str) -> None:
    if path.exists():
        path.write_text(text)

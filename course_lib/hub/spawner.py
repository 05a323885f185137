"""The hub's spawner: each student's server as that student's Unix user, in a cgroup of its own.

JupyterHub's LocalProcessSpawner already runs the server as the user (setuid in the child). This
subclass also puts the child, before it drops root, into a cgroup with the spawner's `mem_limit`
and `cpu_limit` (course_lib.dev.cgroup_sandbox makes it), so one student's runaway kernel is
OOM-killed or throttled alone. Without root or a writable cgroup file system the server still
starts, WITHOUT limits, and the hub's log says so with a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool

from course_lib.dev.cgroup_sandbox import Sandbox
from course_lib.errors import CourseError
from course_lib.units import GIB


class CourseSpawner(LocalProcessSpawner):
    """LocalProcessSpawner plus a memory and CPU cgroup per server (see the module docstring)."""

    use_cgroups = Bool(True, config=True, help="Put each server in a cgroup with mem_limit and cpu_limit.")

    _sandbox: Sandbox | None = None

    def _limits(self) -> tuple[int, float]:
        memory = int(self.mem_limit or psutil.virtual_memory().total)
        return memory, float(self.cpu_limit or (os.cpu_count() or 1))

    def _make_sandbox(self) -> Sandbox | None:
        if not self.use_cgroups or not (self.mem_limit or self.cpu_limit):
            return None
        memory, cpus = self._limits()
        if os.geteuid() != 0:
            self.log.warning(
                "%s's server runs WITHOUT memory and CPU limits: the hub is not root, so it cannot make cgroups",
                self.user.name,
            )
            return None
        try:
            sandbox = Sandbox.create(memory, cpus, name=f"jupyterhub-{self.user.name}")
        except CourseError as error:
            self.log.warning("%s's server runs WITHOUT memory and CPU limits: %s", self.user.name, error)
            return None
        self.log.info(
            "%s's server runs in cgroup %s: %.1f GiB of memory, %.2f CPUs",
            self.user.name,
            sandbox.memory_dir,
            memory / GIB,
            cpus,
        )
        return sandbox

    async def start(self):
        self._sandbox = self._make_sandbox()
        return await super().start()

    def make_preexec_fn(self, name):
        drop_root = super().make_preexec_fn(name)
        sandbox = self._sandbox

        def preexec() -> None:
            if sandbox is not None:
                sandbox.enter()  # while still root: a user cannot write cgroup.procs
            drop_root()

        return preexec

    async def stop(self, now=False):
        await super().stop(now=now)
        if self._sandbox is not None:
            self._sandbox.remove()  # kills what is left in it (kernels) and deletes the folders
            self._sandbox = None

    def get_state(self):
        state = super().get_state()
        if self._sandbox is not None:
            state["cgroup"] = [self._sandbox.version, str(self._sandbox.memory_dir), str(self._sandbox.cpu_dir)]
        return state

    def load_state(self, state):
        super().load_state(state)
        if "cgroup" in state:
            version, memory_dir, cpu_dir = state["cgroup"]
            self._sandbox = Sandbox(int(version), Path(memory_dir), Path(cpu_dir))

    def clear_state(self):
        super().clear_state()
        self._sandbox = None


def remove_leftover_cgroups(usernames: list[str]) -> list[Path]:
    """Delete the cgroups a hub that died without stopping its servers left for these users."""
    current = Sandbox.current()
    removed = []
    for name in usernames:
        folder = f"jupyterhub-{name}"
        if current.version == 2:
            sandbox = Sandbox(2, Path("/sys/fs/cgroup") / folder, Path("/sys/fs/cgroup") / folder)
        else:
            sandbox = Sandbox(1, current.memory_dir / folder, current.cpu_dir / folder)
        if any(f.exists() for f in sandbox.folders()):
            sandbox.remove()
            removed.extend(sandbox.folders())
    return removed

"""Pause Python's garbage collector while a big request body's parsed JSON is alive.

A 224x224x3 image sent as JSON parses into some 50,000 small lists that die as soon as numpy has
copied them. Allocating them sets off collections, and the full ones scan every object TensorFlow
keeps alive (about 326,000 after `import tensorflow`): measured in one process, a decode took 27 ms
of CPU at best and 215-240 ms once full collections began, 20 ms with the collector paused. The
lists are freed by reference counting, not by the collector, so pausing it while they exist loses
nothing; other threads' cycles wait for the next collection after it resumes.

The codec threads share one pause: the collector resumes when the last of them is done.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_holders = 0
_resume = False  # whether the collector was on when the first holder paused it


def paused(work: Callable[[], T]) -> Callable[[], T]:
    """`work`, run with the garbage collector paused (for thread pools: `executor.submit(paused(f))`)."""

    def run() -> T:
        global _holders, _resume
        with _lock:
            if _holders == 0:
                _resume = gc.isenabled()
                gc.disable()
            _holders += 1
        try:
            return work()
        finally:
            with _lock:
                _holders -= 1
                if _holders == 0 and _resume:
                    gc.enable()

    return run

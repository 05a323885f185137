"""Parse REST request bodies: orjson where it means what `json` means, big ones in another process.

This module imports neither TensorFlow nor protobuf, so a decoding process starts in a fraction
of a second. A 224x224x3 image sent as JSON is 3 MB of text; parsing it and turning its 150,000
numbers into an array holds the interpreter lock for 20 ms or more, and while a server thread does
that the event loop cannot answer anyone. `DecodingProcesses` does that work in worker processes
and sends back the document with its one big array already a numpy array (`DenseValue`), so small
requests keep their latency while images arrive. Whatever the worker cannot convert exactly as the
server would (literals, objects, strings, mixed rows) is left for the server's own full parse.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

log = logging.getLogger("course_lib.serving")

NOT_PARSED = object()
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20  # an integer of 20+ digits can be past 64 bits: orjson would make it a float
TENSOR_KEYS = ("instances", "inputs")


def has_long_integer(body: bytes) -> bool:
    """Whether the body holds an integer of 20 or more digits (not a long fraction or exponent).

    Runs of digits are found at C speed (translate, find), so a body of floats written with many
    decimals (0.00019999999494757503, as json.dumps writes float32 values) keeps orjson's parse.
    """
    flat = body.translate(_DIGITS_AS_ZEROS)
    index = flat.find(_TWENTY_DIGITS)
    while index != -1:
        start, end = index, index + len(_TWENTY_DIGITS)
        while start > 0 and flat[start - 1] == 0x30:
            start -= 1
        while end < len(flat) and flat[end] == 0x30:
            end += 1
        before, after = flat[start - 1 : start], flat[end : end + 1]
        in_exponent = before in (b"e", b"E", b"+") or (before == b"-" and flat[start - 2 : start - 1] in (b"e", b"E"))
        if before != b"." and not in_exponent and after not in (b".", b"e", b"E"):
            return True
        index = flat.find(_TWENTY_DIGITS, end)
    return False


def fast_loads(body: bytes) -> Any:
    """orjson's parse (several times faster than json's) when it means the same; else NOT_PARSED.

    orjson refuses NaN/Infinity tokens and 1e400, and turns integers past 64 bits into floats: such
    bodies (and every malformed one, for json's error messages) go to json.loads instead.
    """
    if has_long_integer(body):
        return NOT_PARSED
    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        return NOT_PARSED


@dataclass(frozen=True)
class DenseValue:
    """A numeric JSON array already made into a numpy array; stands in the document for its list."""

    array: np.ndarray


def parse_with_dense_value(body: bytes) -> dict | None:
    """The body parsed, its "instances" or "inputs" list already a numpy array; None if it needs the
    server's full parse (malformed, literals, no list or both keys, objects, strings, ragged rows).

    The array is exactly what the server's fast path makes of that list (`np.asarray`), so the
    server converts it to the input's dtype with the same checks.
    """
    if b"true" in body or b"false" in body:  # numpy would turn them into numbers
        return None
    doc = fast_loads(body)
    if not isinstance(doc, dict):
        return None
    keys = [key for key in TENSOR_KEYS if key in doc]
    if len(keys) != 1 or not isinstance(doc[keys[0]], list) or not doc[keys[0]]:
        return None
    try:
        array = np.asarray(doc[keys[0]])
    except (ValueError, TypeError, OverflowError):
        return None
    if array.dtype.kind not in "fiu":
        return None
    doc[keys[0]] = DenseValue(array)
    return doc


def _start_worker(server_pid: int) -> None:
    """Set up a decoding process: the collector off, and an exit when the server is gone.

    The collector stays off for good: what a worker makes is acyclic (lists, dicts, floats) and
    freed by reference counting, while the 50,000 lists of one image set off collections costing
    10 of a parse's 24 ms (orjson.loads, measured in one process). And a worker holds both ends of
    its task queue, so it would never see a killed server's pipe close: it checks its parent instead.
    """
    gc.disable()

    def exit_with_the_server() -> None:
        while os.getppid() == server_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_with_the_server, name="exit-with-server", daemon=True).start()


class DecodingProcesses:
    """Worker processes that run `parse_with_dense_value`, started on first use ("spawn": the server
    runs TensorFlow's threads, which a fork would copy in an unknown state).

    `parse` answers None instead of raising when the workers are gone (killed, out of memory): the
    server then parses the body itself, and a new pool is started for the next one. Where processes
    cannot be started at all (a process limit, or a parent whose main module a spawned process cannot
    import, such as `python -` from stdin), the server parses every body itself from then on.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._pool_answered = False  # whether the current pool's workers have answered at least once
        self._cannot_start = False

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
            )
            self._pool_answered = False
        return self._pool

    async def parse(self, body: bytes) -> dict | None:
        if self._cannot_start or self.workers < 1:
            return None
        try:
            doc = await asyncio.wrap_future(self._executor().submit(parse_with_dense_value, body))
            self._pool_answered = True
            return doc
        except BrokenProcessPool:
            if self._pool_answered:
                log.warning("A JSON decoding process died; this body is parsed in the server, a new pool starts next")
            else:
                self._give_up("they stopped before answering once")
            self.close()
        except OSError as exc:
            self._give_up(str(exc))
            self.close()
        return None

    def _give_up(self, why: str) -> None:
        log.warning("Cannot start JSON decoding processes (%s): the server parses big bodies itself", why)
        self._cannot_start = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

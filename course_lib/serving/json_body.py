"""Parse REST request bodies: orjson where it means what `json` means; big numeric lists by simdjson,
in another process.

A 224x224x3 image sent as JSON is 3 MB of text. orjson makes 200,000 Python objects of it and
np.asarray an array of those (18 ms, holding the interpreter lock); `parse_with_dense_value` has
simdjson parse the list's text straight into a buffer of numbers (5 ms) and returns the document
with that array in place of the list (`DenseValue`). `DecodingProcesses` runs it in worker
processes, so that even those 5 ms do not hold up the event loop and small requests keep their
latency while images arrive. Whatever it cannot convert exactly as the server would (literals,
objects, strings, ragged rows) is left for the server's own full parse.

This module imports neither TensorFlow nor protobuf, so a decoding process starts in a fraction
of a second.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import simdjson

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

    The array is exactly what the server's fast path makes of that list (`np.asarray`: float64 if
    any number has a fraction or exponent, else int64), so the server converts it to the input's
    dtype with the same checks. The list's text is parsed by simdjson straight into a buffer of
    numbers (5 ms in all for an image, where orjson's lists and np.asarray took 18), and the rest of the
    body, with the list taken out, by orjson.
    """
    span = _tensor_list_span(body)
    if span is None:
        return None
    key, start, end = span
    rest_text = body[:start] + b"0" + body[end:]
    if b"true" in rest_text or b"false" in rest_text:  # the full parse decides what literals mean
        return None
    rest = fast_loads(rest_text)
    present = [name for name in TENSOR_KEYS if isinstance(rest, dict) and name in rest]
    if present != [key] or type(rest[key]) is not int or rest[key] != 0:  # the span was not the key's value
        return None
    array = _dense_array(body[start:end])
    if array is None:
        return None
    rest[key] = DenseValue(array)
    return rest


_SKELETON_DROP = b"0123456789.eE+- \t\r\n"  # what is left of a numeric list is its brackets and commas


def _tensor_list_span(body: bytes) -> tuple[str, int, int] | None:
    """(key, start, end): the body's first list, from its '[' to the body's last ']', if the text just
    before it is '"instances":' or '"inputs":'.

    A guess, checked by the caller: the text must parse as one list of numbers, and the rest of the
    body with the list replaced by 0 must hold that key with the value 0. The keys are looked for
    only before the first '[' (a 3 MB search for a missing "inputs" cost 2 ms).
    """
    start = body.find(b"[")
    head = body[:start].rstrip()
    if start == -1 or not head.endswith(b":"):
        return None
    head = head[:-1].rstrip()
    key = next((key for key in TENSOR_KEYS if head.endswith(f'"{key}"'.encode())), None)
    return None if key is None else (key, start, body.rfind(b"]") + 1)


def _dense_array(text: bytes) -> np.ndarray | None:
    """A JSON list of numbers, rectangular and not empty, as np.asarray would make it; else None.

    Integers past int64 are refused (numpy would make them uint64, or objects among floats), and so
    are true and false (numbers to numpy; as_buffer takes only numbers). A parser serves one parse:
    pysimdjson refuses to reuse one while any of its results (or a traceback holding one) lives."""
    is_float = b"." in text or b"e" in text or b"E" in text
    try:
        parsed = simdjson.Parser().parse(text)
        if not isinstance(parsed, simdjson.Array):
            return None
        flat = np.frombuffer(parsed.as_buffer(of_type="d" if is_float else "i"), np.float64 if is_float else np.int64)
        shape = _first_path_shape(parsed)  # every leaf is a number: as_buffer refuses anything else
    except (ValueError, TypeError, RuntimeError):  # not JSON; not all numbers; an integer past 64 bits
        return None
    if 0 in shape or flat.size != np.prod(shape) or text.translate(None, _SKELETON_DROP) != _skeleton(shape):
        return None  # empty, or ragged: as_buffer flattens any nesting
    return flat.reshape(shape)


def _first_path_shape(parsed) -> tuple[int, ...]:
    """The lengths along the first element of each level: the shape, if the list is rectangular."""
    shape = []
    node = parsed
    while not isinstance(node, (int, float)):
        shape.append(len(node))
        if not len(node):
            break
        node = node[0]
    return tuple(shape)


def _skeleton(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a rectangular list of this shape: (2, 2) -> b"[[,],[,]]"."""
    text = "[" + "," * (shape[-1] - 1) + "]"
    for size in reversed(shape[:-1]):
        text = "[" + ",".join([text] * size) + "]"
    return text.encode()


def _start_worker(server_pid: int) -> None:
    """Set up a decoding process: the collector off, and an exit when the server is gone.

    The collector stays off for good: what a worker makes is acyclic (an array, a small dict) and
    freed by reference counting. And a worker holds both ends of its task queue, so it would never
    see a killed server's pipe close: it checks its parent instead.
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

    `parse` answers None only for a body that needs the server's full parse. When the workers are gone
    (killed, out of memory) the body is parsed on `fallback` (the server's codec threads), and a new
    pool is started for the next one. Where processes cannot be started at all (a process limit, or a
    parent whose main module a spawned process cannot import, such as `python -` from stdin), every
    body is parsed on `fallback` from then on.
    """

    def __init__(self, workers: int, fallback: Executor):
        self.workers = workers
        self.fallback = fallback
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
        """`parse_with_dense_value(body)`, in a worker process if one can run it."""
        if not self._cannot_start and self.workers > 0:
            try:
                doc = await asyncio.wrap_future(self._executor().submit(parse_with_dense_value, body))
                self._pool_answered = True
                return doc
            except BrokenProcessPool:
                if self._pool_answered:
                    log.warning("A JSON decoding process died; this body is parsed on a thread, a new pool starts next")
                else:
                    self._give_up("they stopped before answering once")
                self.close()
            except OSError as exc:
                self._give_up(str(exc))
                self.close()
        return await asyncio.wrap_future(self.fallback.submit(parse_with_dense_value, body))

    def _give_up(self, why: str) -> None:
        log.warning("Cannot start JSON decoding processes (%s): the server parses big bodies on its threads", why)
        self._cannot_start = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

"""Server-side batching: concurrent requests for the same signature run as one batch.

Follows TF Serving's shared batch scheduler: a batch closes when it reaches `max_batch_size`
examples or when its oldest request has waited `batch_timeout_micros`; with a timeout of 0 it
takes whatever is queued as soon as one of `num_batch_threads` is free, so batches grow exactly
when the server is busy. Requests are stacked along dimension 0, padded up to the next of
`allowed_batch_sizes` if given, run once, and the outputs split back per request.

It is built on threads, not on the event loop: gRPC worker threads wait on the returned future
directly, and REST handlers await it with `asyncio.wrap_future`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import numpy as np

from course_lib.serving.config import BatchingOptions
from course_lib.serving.errors import ServingError, invalid_argument, unavailable

log = logging.getLogger("course_lib.serving")

BatchRunner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    size: int
    future: Future
    enqueued_at: float


@dataclass
class _Queue:
    runner: BatchRunner
    tasks: deque = field(default_factory=deque)
    queued_size: int = 0


@dataclass
class BatchStats:
    """How many requests ran in how many batches, and a histogram of batch sizes."""

    requests: int = 0
    batches: int = 0
    sizes: Counter = field(default_factory=Counter)

    @property
    def mean_batch_size(self) -> float:
        total = sum(size * count for size, count in self.sizes.items())
        return total / self.batches if self.batches else 0.0

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.batches} batches "
            f"(mean batch size {self.mean_batch_size:.1f}, largest {max(self.sizes, default=0)})"
        )


class Batcher:
    """Queues requests per key (model version, signature, input shapes) and runs them in batches."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._executor = ThreadPoolExecutor(options.num_batch_threads, thread_name_prefix="batch")
        self._slots = threading.Semaphore(options.num_batch_threads)
        self._changed = threading.Condition()
        self._queues: dict[Hashable, _Queue] = {}
        self._closed = False
        self._dispatcher: threading.Thread | None = None
        self.stats = BatchStats()

    def submit(self, key: Hashable, runner: BatchRunner, inputs: dict[str, np.ndarray], size: int) -> Future:
        """Queue one request of `size` examples; the future gets its slice of the batch's outputs."""
        max_size = self.options.max_batch_size
        if size > max_size:
            raise invalid_argument(f"Task size {size} is larger than maximum input batch size {max_size}")
        if size < 1:
            raise invalid_argument("Batching needs at least one example per request (dimension 0 was 0)")
        task = _Task(inputs=inputs, size=size, future=Future(), enqueued_at=time.monotonic())
        with self._changed:
            if self._closed:
                raise unavailable("The server is shutting down")
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._dispatch_forever, name="batch-dispatcher", daemon=True)
                self._dispatcher.start()
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(runner=runner)
            if queue.queued_size + size > self.options.max_enqueued_batches * max_size:
                raise unavailable("The batch scheduling queue to which this task was submitted is full")
            queue.tasks.append(task)
            queue.queued_size += size
            self._changed.notify()
        return task.future

    def run(
        self, key: Hashable, runner: BatchRunner, inputs: dict[str, np.ndarray], size: int
    ) -> dict[str, np.ndarray]:
        """`submit` and wait: for callers on worker threads."""
        return self.submit(key, runner, inputs, size).result()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ----- the dispatcher thread ---------------------------------------------------------------

    def _drop_cancelled(self) -> None:
        for key in list(self._queues):
            queue = self._queues[key]
            while queue.tasks and queue.tasks[0].future.cancelled():
                queue.queued_size -= queue.tasks.popleft().size
            if not queue.tasks:
                del self._queues[key]

    def _next_ready_key(self) -> Hashable | None:
        """Wait (holding the condition) until some queue should run; None once closed."""
        timeout = self.options.batch_timeout_micros / 1e6
        while True:
            if self._closed:
                return None
            self._drop_cancelled()
            if not self._queues:
                self._changed.wait()
                continue
            full = [k for k, q in self._queues.items() if q.queued_size >= self.options.max_batch_size]
            if full:
                return min(full, key=lambda k: self._queues[k].tasks[0].enqueued_at)
            oldest = min(self._queues, key=lambda k: self._queues[k].tasks[0].enqueued_at)
            wait = self._queues[oldest].tasks[0].enqueued_at + timeout - time.monotonic()
            if wait <= 0:
                return oldest
            self._changed.wait(wait)

    def _take_batch(self, key: Hashable) -> tuple[_Queue, list[_Task]]:
        queue = self._queues[key]
        tasks, total = [], 0
        while queue.tasks and total + queue.tasks[0].size <= self.options.max_batch_size:
            task = queue.tasks.popleft()
            queue.queued_size -= task.size
            if not task.future.set_running_or_notify_cancel():  # cancelled while waiting
                continue
            tasks.append(task)
            total += task.size
        if not queue.tasks:
            del self._queues[key]
        return queue, tasks

    def _dispatch_forever(self) -> None:
        while True:
            self._slots.acquire()
            with self._changed:
                key = self._next_ready_key()
                if key is None:
                    self._slots.release()
                    return
                queue, tasks = self._take_batch(key)
            if not tasks:
                self._slots.release()
                continue
            try:
                self._executor.submit(self._run_batch, queue.runner, tasks)
            except RuntimeError:  # executor shut down: the server is stopping
                self._slots.release()
                for task in tasks:
                    task.future.set_exception(unavailable("The server is shutting down"))
                return

    def _padded_size(self, total: int) -> int:
        for allowed in self.options.allowed_batch_sizes:
            if allowed >= total:
                return allowed
        return total

    def _run_batch(self, runner: BatchRunner, tasks: list[_Task]) -> None:
        try:
            total = sum(task.size for task in tasks)
            padded = self._padded_size(total)
            with self._changed:
                self.stats.requests += len(tasks)
                self.stats.batches += 1
                self.stats.sizes[total] += 1
            error, outputs = None, {}
            try:
                outputs = runner(_stack(tasks, padded - total))
            except ServingError as exc:
                error = exc
            except Exception as exc:  # report, never kill the batch thread
                log.exception("Batch of %d requests failed", len(tasks))
                error = ServingError(grpc.StatusCode.INTERNAL, f"Batch failed: {type(exc).__name__}: {exc}")
            for name, value in outputs.items():
                if error is None and (np.ndim(value) == 0 or value.shape[0] != padded):
                    error = invalid_argument(
                        f"Batched output tensor {name}'s 0th dimension does not equal the sum of the 0th "
                        "dimension sizes of the input tensors"
                    )
            offset = 0
            for task in tasks:
                if error is not None:
                    task.future.set_exception(error)
                else:
                    task.future.set_result({k: v[offset : offset + task.size] for k, v in outputs.items()})
                offset += task.size
        finally:
            self._slots.release()


def _stack(tasks: list[_Task], padding: int) -> dict[str, np.ndarray]:
    """Concatenate the requests' inputs along dimension 0, padding with copies of the first row."""
    inputs = {}
    for name in tasks[0].inputs:
        parts = [task.inputs[name] for task in tasks]
        if padding:
            parts.append(np.repeat(parts[0][:1], padding, axis=0))
        inputs[name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return inputs

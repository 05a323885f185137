"""The Batcher merges concurrent requests, splits answers back, and reports errors to every caller."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from contextlib import contextmanager

import grpc
import numpy as np
import pytest

from course_lib.serving.batching import Batcher
from course_lib.serving.config import BatchingOptions
from course_lib.serving.errors import ServingError


class RecordingRunner:
    """Doubles its input and records the batch sizes it ran.

    It sets `entered` when a batch reaches it, and `release` can hold it there: a test orders events by
    waiting on these, never by sleeping.
    """

    def __init__(self):
        self.batch_sizes: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, inputs):
        self.entered.set()
        assert self.release.wait(10), "the test never released the runner"
        self.batch_sizes.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}

    def hold(self) -> None:
        self.release.clear()

    def wait_until_running(self) -> None:
        assert self.entered.wait(10), "no batch reached the runner within 10 s"


@contextmanager
def busy(batcher: Batcher):
    """Occupy the batcher's only batch thread with a held batch of another model, so what the test
    submits meanwhile queues up in full before any of it can run; the thread is freed on exit."""
    assert batcher.options.num_batch_threads == 1
    blocker = RecordingRunner()
    blocker.hold()
    held = batcher.submit("blocker", blocker, request(0), 1)
    blocker.wait_until_running()
    try:
        yield
    finally:
        blocker.release.set()
    assert answer(held)["y"].shape == (1, 2)


def request(value: float, rows: int = 1):
    return {"x": np.full((rows, 2), value, np.float32)}


def answer(future: Future) -> dict[str, np.ndarray]:
    """The outputs of a request that must succeed (a ServingError fails the test with its message)."""
    return future.result(timeout=10)


def outcome(future: Future):
    try:
        return future.result(timeout=10)
    except ServingError as exc:
        return exc


@pytest.fixture
def make_batcher():
    made = []

    def make(**options) -> Batcher:
        made.append(Batcher(BatchingOptions(**options)))
        return made[-1]

    yield make
    for batcher in made:
        batcher.close()


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(make_batcher):
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=1)
    runner = RecordingRunner()
    with busy(batcher):
        futures = [batcher.submit("m", runner, request(i, rows=1 + i % 2), 1 + i % 2) for i in range(6)]
    for i, future in enumerate(futures):
        np.testing.assert_array_equal(answer(future)["y"], np.full((1 + i % 2, 2), 2 * i, np.float32))
    assert runner.batch_sizes == [7, 2]  # 1+2+1+2+1 rows fill 8 as far as whole requests go; the last waits
    assert batcher.stats.requests == 1 + 6 and batcher.stats.batches == 1 + len(runner.batch_sizes)


def test_batches_never_exceed_max_batch_size(make_batcher):
    batcher = make_batcher(max_batch_size=4, batch_timeout_micros=20_000, num_batch_threads=2)
    runner = RecordingRunner()
    futures = [batcher.submit("m", runner, request(i, rows=1 + i % 3), 1 + i % 3) for i in range(20)]
    [outcome(f) for f in futures]
    assert max(runner.batch_sizes) <= 4 and sum(runner.batch_sizes) == sum(1 + i % 3 for i in range(20))


def test_with_zero_timeout_requests_queue_up_while_the_thread_is_busy(make_batcher):
    batcher = make_batcher(max_batch_size=32, batch_timeout_micros=0, num_batch_threads=1)
    runner = RecordingRunner()
    runner.hold()
    first = batcher.submit("m", runner, request(0), 1)
    runner.wait_until_running()
    rest = [batcher.submit("m", runner, request(i), 1) for i in range(1, 6)]  # queued before submit returns
    runner.release.set()
    [outcome(f) for f in [first, *rest]]
    assert runner.batch_sizes == [1, 5]


def test_worker_threads_can_wait_on_the_batcher_directly(make_batcher):
    # A full batch runs at once, so the eight callers' rows meet in one batch however slowly their
    # threads start; the 10 s timeout never decides.
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=10_000_000, num_batch_threads=1)
    runner = RecordingRunner()
    results = {}

    def client(i):
        results[i] = batcher.run("m", runner, request(i), 1)["y"][0, 0]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join(10) for t in threads]
    assert results == {i: 2 * i for i in range(8)} and runner.batch_sizes == [8]


def test_requests_for_different_keys_are_never_mixed(make_batcher):
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=20_000, num_batch_threads=1)
    runner_a, runner_b = RecordingRunner(), RecordingRunner()
    with busy(batcher):
        futures = [batcher.submit("a", runner_a, request(1), 1) for _ in range(3)] + [
            batcher.submit("b", runner_b, request(5), 1) for _ in range(2)
        ]
    assert [answer(f)["y"][0, 0] for f in futures] == [2, 2, 2, 10, 10]
    assert runner_a.batch_sizes == [3] and runner_b.batch_sizes == [2]


def test_a_request_larger_than_max_batch_size_is_rejected(make_batcher):
    batcher = make_batcher(max_batch_size=4, num_batch_threads=1)
    with pytest.raises(ServingError, match="Task size 5 is larger than maximum input batch size 4") as info:
        batcher.submit("m", RecordingRunner(), request(0, rows=5), 5)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_failing_batch_fails_every_request_in_it_and_the_batcher_keeps_working(make_batcher):
    calls = []

    def flaky(inputs):
        calls.append(len(inputs["x"]))
        if len(calls) == 1:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "bad batch")
        return {"y": inputs["x"]}

    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=30_000, num_batch_threads=1)
    with busy(batcher):
        futures = [batcher.submit("m", flaky, request(i), 1) for i in range(3)]
    failed = [outcome(f) for f in futures]
    assert calls[0] == 3 and all(isinstance(r, ServingError) and r.message == "bad batch" for r in failed)
    assert batcher.run("m", flaky, request(9), 1)["y"][0, 0] == 9


def test_unexpected_runner_errors_become_internal_errors(make_batcher):
    def broken(inputs):
        raise RuntimeError("boom")

    result = outcome(make_batcher(max_batch_size=2, num_batch_threads=1).submit("m", broken, request(0), 1))
    assert isinstance(result, ServingError) and result.code == grpc.StatusCode.INTERNAL and "boom" in result.message


def test_outputs_without_the_batch_dimension_are_an_error(make_batcher):
    batcher = make_batcher(max_batch_size=4, num_batch_threads=1)
    result = outcome(batcher.submit("m", lambda inputs: {"y": np.zeros(7)}, request(0), 1))
    assert isinstance(result, ServingError) and "0th dimension" in result.message


def test_batches_are_padded_to_the_next_allowed_size(make_batcher):
    batcher = make_batcher(
        max_batch_size=8, batch_timeout_micros=30_000, num_batch_threads=1, allowed_batch_sizes=(4, 8)
    )
    runner = RecordingRunner()
    with busy(batcher):
        futures = [batcher.submit("m", runner, request(i), 1) for i in range(3)]
    results = [answer(f) for f in futures]
    assert runner.batch_sizes == [4]
    assert [r["y"].shape for r in results] == [(1, 2)] * 3


def test_a_full_queue_answers_unavailable(make_batcher):
    batcher = make_batcher(max_batch_size=2, max_enqueued_batches=1, num_batch_threads=1)
    runner = RecordingRunner()
    runner.hold()
    running = batcher.submit("m", runner, request(0, rows=2), 2)
    runner.wait_until_running()  # out of the queue: the queue has room for one batch again
    queued = batcher.submit("m", runner, request(1, rows=2), 2)
    try:
        with pytest.raises(ServingError, match="queue to which this task was submitted is full") as info:
            batcher.submit("m", runner, request(2), 1)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        runner.release.set()
    assert answer(running)["y"].shape == (2, 2) and answer(queued)["y"].shape == (2, 2)


def test_a_cancelled_request_is_dropped_from_its_batch(make_batcher):
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=1_000, num_batch_threads=1)
    runner = RecordingRunner()
    with busy(batcher):  # the cancel comes before any batch could take the request
        doomed = batcher.submit("m", runner, request(0), 1)
        kept = batcher.submit("m", runner, request(1), 1)
        assert doomed.cancel()
    assert answer(kept)["y"][0, 0] == 2
    assert runner.batch_sizes == [1]


def test_a_closed_batcher_refuses_new_requests(make_batcher):
    batcher = make_batcher(max_batch_size=2, num_batch_threads=1)
    batcher.close()
    with pytest.raises(ServingError, match="shutting down"):
        batcher.submit("m", RecordingRunner(), request(0), 1)

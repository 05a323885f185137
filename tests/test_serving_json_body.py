"""The REST server's JSON decoding processes (course_lib.serving.json_body.DecodingProcesses)."""

import asyncio
import gc
import json

import numpy as np

from course_lib.serving import json_body


def test_a_worker_process_returns_the_document_with_its_array_made():
    decoders = json_body.DecodingProcesses(1)
    try:
        rows = np.random.default_rng(0).random((50, 4)).tolist()
        doc = asyncio.run(decoders.parse(json.dumps({"instances": rows, "signature_name": "s"}).encode()))
        assert doc is not None, "the worker left this plain numeric body to the server"
        assert doc["signature_name"] == "s"
        np.testing.assert_array_equal(doc["instances"].array, np.asarray(rows))
        assert asyncio.run(decoders.parse(b'{"instances": [[true]]}')) is None  # left to the server
        # the workers run with the collector off: their garbage is acyclic, the collections were 40 % of a parse
        assert decoders._executor().submit(gc.isenabled).result(timeout=30) is False
    finally:
        decoders.close()


def test_where_processes_cannot_start_the_server_parses_every_body_itself(monkeypatch, caplog):
    starts = []

    def no_processes(*args, **kwargs):
        starts.append(args)
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(json_body, "ProcessPoolExecutor", no_processes)
    decoders = json_body.DecodingProcesses(2)
    body = b'{"instances": [[1.0, 2.0]]}'
    assert asyncio.run(decoders.parse(body)) is None
    assert asyncio.run(decoders.parse(body)) is None
    assert len(starts) == 1, "a second start was tried after the first failed"
    assert "Cannot start JSON decoding processes" in caplog.text


def test_zero_workers_means_no_process():
    assert asyncio.run(json_body.DecodingProcesses(0).parse(b'{"instances": [[1.0]]}')) is None


def test_workers_that_die_before_answering_once_are_not_started_again(monkeypatch, caplog):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    pools = []

    class DyingPool:
        def __init__(self, *args, **kwargs):
            pools.append(self)

        def submit(self, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("a child process terminated abruptly"))
            return future

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(json_body, "ProcessPoolExecutor", DyingPool)
    decoders = json_body.DecodingProcesses(2)
    body = b'{"instances": [[1.0, 2.0]]}'
    assert asyncio.run(decoders.parse(body)) is None
    assert asyncio.run(decoders.parse(body)) is None
    assert len(pools) == 1
    assert "stopped before answering once" in caplog.text
